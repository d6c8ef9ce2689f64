"""Pearson correlation matrix of all columns: one pass collects sums and sums of products."""
import csv
import math

FILE_NAME = 'numbers.csv'


def moments(rows):
    k = len(rows[0])
    n = 0
    sums = [0.0] * k
    products = [[0.0] * k for _ in range(k)]
    for row in rows:
        x = [float(v) for v in row]
        n += 1
        for i in range(k):
            sums[i] += x[i]
            for j in range(k):
                products[i][j] += x[i] * x[j]
    return n, sums, products


def correlation(n, sums, products):
    k = len(sums)
    matrix = []
    for i in range(k):
        line = []
        for j in range(k):
            cov = products[i][j] / n - sums[i] * sums[j] / n / n
            var_i = products[i][i] / n - (sums[i] / n) ** 2
            var_j = products[j][j] / n - (sums[j] / n) ** 2
            line.append(cov / math.sqrt(var_i * var_j))
        matrix.append(line)
    return matrix


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    n, sums, products = moments(rows)
    matrix = correlation(n, sums, products)
    output = [[''] + header] + [[header[i]] + line for i, line in enumerate(matrix)]
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
