"""z-score normalisation: each value minus its column mean, divided by the column's standard
deviation. The standard deviation needs the means and the normalisation needs both, so this
runs as three rounds of chunks."""
import csv
import math

FILE_NAME = 'numbers.csv'


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


def normalize(rows, means, stds):
    out = []
    for row in rows:
        out.append([round((float(v) - m) / s, 12) for v, m, s in zip(row, means, stds, strict=True)])
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
    scores = normalize(rows, means, stds)
    output = [header] + scores
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
