"""Results RunSurge cannot prove combinable from the code, combined as the tags say."""
import csv
import statistics

FILE_NAME = 'numbers.csv'


def largest(rows):
    best = sorted(float(r[0]) for r in rows)[-1]
    aggregation = "m:best"  # noqa: F841 (read by RunSurge)
    return best


def average_of_second(rows):
    avg = statistics.fmean(float(r[1]) for r in rows)
    aggregation = "a:avg"  # noqa: F841 (read by RunSurge)
    return avg


def column_products(rows):
    result = [1.0] * len(rows[0])
    for r in rows:
        result = [p * (1 + float(v) / 10000) for p, v in zip(result, r, strict=True)]
    aggregation = "i:result"  # noqa: F841 (read by RunSurge)
    return result


def count_rows(rows):
    n = len(rows)
    aggregation = "l:n"  # noqa: F841 (read by RunSurge)
    return n


def first_values(rows):
    firsts = [r[0] for r in rows]
    aggregation = ""  # noqa: F841 (read by RunSurge)
    return firsts


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    best = largest(rows)
    avg = average_of_second(rows)
    products = column_products(rows)
    n = count_rows(rows)
    firsts = first_values(rows)
    output = [['best', best], ['avg', avg], ['n', n], ['products'] + products, ['first', firsts[0]]]
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
