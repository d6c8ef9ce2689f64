import csv

FILE_NAME = 'numbers.csv'

with open(FILE_NAME) as f:
    rows = list(csv.reader(f))
print(len(rows))
