"""Logging inside the loop: I/O the chunks cannot repeat."""
import csv

FILE_NAME = 'numbers.csv'


def sums_with_progress(rows):
    total = 0.0
    for i, row in enumerate(rows):
        total += float(row[0])
        if i % 100 == 0:
            print('row', i, 'total', total)
    return total


def sums_with_log(rows):
    total = 0.0
    with open('log.txt', 'w') as log:
        for row in rows:
            total += float(row[1])
            log.write(f'{total}\n')
    return total


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    a = sums_with_progress(rows)
    b = sums_with_log(rows)
    output = [['a', a, 'b', b]]
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
