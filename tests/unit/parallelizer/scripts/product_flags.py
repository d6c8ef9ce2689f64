"""Growth factor (a product) per column and flags that switch once: any negative value, any zero."""
import csv

FILE_NAME = 'numbers.csv'


def growth(rows):
    factor = 1.0
    for row in rows:
        factor *= 1 + float(row[0]) / 100000
    return factor


def flags(rows):
    negative = [False] * len(rows[0])
    zero = False
    for row in rows:
        for i, v in enumerate(row):
            if float(v) < 0:
                negative[i] = True
            if float(v) == 0:
                zero = True
    return negative, zero


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    factor = growth(rows)
    negative, zero = flags(rows)
    output = [['growth', factor, 'zero', zero], header, negative]
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
