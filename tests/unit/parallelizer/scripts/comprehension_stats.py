"""Statistics written with comprehensions: RunSurge rewrites them into one loop."""
import csv

FILE_NAME = 'numbers.csv'


def summary(rows):
    mean = sum(float(r[0]) for r in rows) / len(rows)
    positives = len([r for r in rows if float(r[1]) > 0])
    top = max(float(r[2]) for r in rows)
    bottom = min(float(r[2]) for r in rows)
    labels = [r[3][:4] for r in rows if float(r[3]) < -90]
    return [mean, positives, top, bottom, '|'.join(labels)]


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    result = summary(rows)
    output = [['mean', 'positives', 'top', 'bottom', 'labels'], result]
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
