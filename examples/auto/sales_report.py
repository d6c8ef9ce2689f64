"""Sales per region, the big orders, and a median that cannot be split.

`totals` (a per-key running sum) and `big_orders` (a filter) split by rows and run in the same
pass over each chunk; `median_amount` needs every value at once, so it runs whole, in its own
task, at the same time; `largest_order` sorts (which proves nothing), so it carries a tag:
RunSurge takes the user's word that the chunks' results combine by taking their maximum."""
import csv

FILE_NAME = 'sales.csv'
BIG = 900.0


def totals(rows):
    per_region = {}
    for row in rows:
        region, amount = row[1], float(row[3])
        per_region[region] = per_region.get(region, 0.0) + amount
    return per_region


def big_orders(rows):
    big = []
    for row in rows:
        if float(row[3]) >= BIG:
            big.append(row[0])
    return big


def median_amount(rows):
    values = sorted(float(row[3]) for row in rows)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def largest_order(rows):
    amounts = sorted(float(row[3]) for row in rows)
    largest = amounts[-1]
    aggregation = "m:largest"  # noqa: F841 (read by RunSurge: the max over the chunks)
    return largest


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    per_region = totals(rows)
    big = big_orders(rows)
    median = median_amount(rows)
    largest = largest_order(rows)
    output = [['region', 'total']] + [[r, round(t, 2)] for r, t in sorted(per_region.items())]
    output.append(['big orders', len(big), ' '.join(big[:10])])
    output.append(['median', median, 'largest', largest])
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
