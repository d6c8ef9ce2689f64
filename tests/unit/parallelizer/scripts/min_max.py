"""Minimum and maximum of every column, written two different ways."""
import csv

FILE_NAME = 'numbers.csv'


def column_min(rows):
    mins = [None] * len(rows[0])
    for row in rows:
        for i in range(len(row)):
            v = float(row[i])
            if mins[i] is None or v < mins[i]:
                mins[i] = v
    return mins


def column_max(rows, ncols):
    maxs = [float('-inf')] * ncols
    for row in rows:
        for i in range(ncols):
            maxs[i] = max(maxs[i], float(row[i]))
    return maxs


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    lows = column_min(rows)
    highs = column_max(rows, len(header))
    output = [header, lows, highs, [hi - lo for hi, lo in zip(highs, lows, strict=True)]]
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
