"""Word frequencies with collections.Counter and per-category word lists."""
import csv
from collections import Counter, defaultdict

FILE_NAME = 'texts.csv'


def frequencies(rows):
    counter = Counter()
    for row in rows:
        counter.update(row[1].lower().split())
    return counter


def ids_by_category(rows):
    groups = defaultdict(list)
    for row in rows:
        groups[row[2]].append(row[0])
    return groups


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    counter = frequencies(rows)
    groups = ids_by_category(rows)
    output = [['word', 'count']] + [list(item) for item in counter.most_common(15)]
    for category, ids in groups.items():
        output.append([category, len(ids), ids[0], ids[-1], ' '.join(ids[:5])])
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
