"""Sum of every column."""
import csv

FILE_NAME = 'numbers.csv'


def column_sums(rows):
    sums = [0.0] * len(rows[0])
    for row in rows:
        for i, value in enumerate(row):
            sums[i] += float(value)
    return sums


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    sums = column_sums(rows)
    output = [header, sums]
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
