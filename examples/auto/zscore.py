"""z-scores of measurements.csv: (value - column mean) / column standard deviation.

Three rounds of chunks: the deviations need the means, the scores need both. The main block
is cut after each call; the chunks of the next call read the means/deviations from there."""
import csv
import math

FILE_NAME = 'measurements.csv'


def column_means(rows):
    sums = [0.0] * len(rows[0])
    for row in rows:
        for i, value in enumerate(row):
            sums[i] += float(value)
    return [s / len(rows) for s in sums]


def column_stds(rows, means):
    squares = [0.0] * len(means)
    for row in rows:
        for i, value in enumerate(row):
            squares[i] += (float(value) - means[i]) ** 2
    return [math.sqrt(s / len(rows)) for s in squares]


def scores(rows, means, stds):
    out = []
    for row in rows:
        out.append([round((float(v) - m) / s, 6) for v, m, s in zip(row, means, stds, strict=True)])
    return out


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    means = column_means(rows)
    stds = column_stds(rows, means)
    z = scores(rows, means, stds)
    output = [header] + z
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
