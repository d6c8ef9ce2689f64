"""Mean and (population) standard deviation of every column, in one pass."""
import csv
import math

FILE_NAME = 'numbers.csv'


def column_means(rows):
    n = 0
    sums = [0.0] * len(rows[0])
    for row in rows:
        n += 1
        for i, value in enumerate(row):
            sums[i] += float(value)
    return [s / n for s in sums]


def column_stds(rows):
    ncols = len(rows[0])
    sums = [0.0] * ncols
    squares = [0.0] * ncols
    for row in rows:
        for i in range(ncols):
            x = float(row[i])
            sums[i] += x
            squares[i] += x * x
    n = len(rows)
    stds = []
    for i in range(ncols):
        mean = sums[i] / n
        stds.append(math.sqrt(max(0.0, squares[i] / n - mean * mean)))
    return stds


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    means = column_means(rows)
    stds = column_stds(rows)
    output = [header, means, stds]
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
