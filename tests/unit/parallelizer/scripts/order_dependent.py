"""Running totals and day-to-day changes: each row's result depends on the rows before it."""
import csv

FILE_NAME = 'numbers.csv'


def running_total(rows):
    total = 0.0
    out = []
    for row in rows:
        total += float(row[0])
        out.append(total)
    return out


def changes(rows):
    previous = None
    out = []
    for row in rows:
        x = float(row[1])
        if previous is not None:
            out.append(x - previous)
        previous = x
    return out


def until_negative(rows):
    n = 0
    for row in rows:
        if float(row[2]) < -99:
            break
        n += 1
    return n


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    totals = running_total(rows)
    deltas = changes(rows)
    n = until_negative(rows)
    pairs = zip(totals, deltas, strict=False)
    output = [['total', 'change']] + [[t, d] for t, d in pairs] + [['until', n]]
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
