"""A median (needs all the values at once: not split, but it runs beside the chunks) and sums."""
import csv

FILE_NAME = 'numbers.csv'


def median(rows, column):
    values = sorted(float(r[column]) for r in rows)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def totals(rows):
    sums = [0.0] * len(rows[0])
    for row in rows:
        for i, v in enumerate(row):
            sums[i] += float(v)
    return sums


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    middle = median(rows, 0)
    sums = totals(rows)
    output = [header, sums, ['median', middle, 'rows', len(rows)]]
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
