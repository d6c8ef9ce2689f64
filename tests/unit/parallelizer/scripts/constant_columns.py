"""Which columns hold a single value throughout (and how many distinct values the others have)."""
import csv

FILE_NAME = 'mixed.csv'


def distinct_values(rows):
    seen = [set() for _ in range(len(rows[0]))]
    for row in rows:
        for i, value in enumerate(row):
            seen[i].add(value)
    return [len(s) for s in seen]


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    distinct = distinct_values(rows)
    constant = [name for name, d in zip(header, distinct, strict=True) if d == 1]
    output = [header, distinct, ['constant:'] + constant]
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
