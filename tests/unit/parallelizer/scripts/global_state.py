"""Functions that keep state in module globals."""
import csv

FILE_NAME = 'numbers.csv'
SEEN = []
calls = 0


def remember(rows):
    for row in rows:
        SEEN.append(row[0])
    return len(SEEN)


def count_calls(rows):
    global calls
    calls += 1
    return calls * len(rows)


def scaled(rows):
    out = []
    for row in rows:
        out.append(float(row[0]) * factor)
    return out


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    factor = 2.5
    n = remember(rows)
    c = count_calls(rows)
    s = scaled(rows)
    output = [['n', n, 'calls', c, 'first', s[0]]]
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
