"""Variance in two passes inside one function: the second pass needs the first's mean."""
import csv

FILE_NAME = 'numbers.csv'


def variance(rows):
    mean = sum(float(r[0]) for r in rows) / len(rows)
    return sum((float(r[0]) - mean) ** 2 for r in rows) / len(rows)


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    var = variance(rows)
    output = [['variance', var]]
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
