"""Keep the large sales of some regions, in their original order."""
import csv

FILE_NAME = 'sales.csv'
THRESHOLD = 500.0
REGIONS = ('north', 'east')


def big_sales(rows, amount_column):
    kept = []
    for row in rows:
        if float(row[amount_column]) > THRESHOLD and row[1] in REGIONS:
            kept.append(row)
    return kept


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    column = header.index('amount')
    kept = big_sales(rows, column)
    output = [header] + kept
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
