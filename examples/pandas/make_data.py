"""Writes orders.csv: a deterministic table of orders (seeded), the example's input."""
import csv
import random
import sys

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
rng = random.Random(7)
regions = ["north", "south", "east", "west"]
products = ["tea", "coffee", "cocoa", "juice", "water"]
with open("orders.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["order", "date", "region", "product", "quantity", "unit_price"])
    for i in range(rows):
        w.writerow([f"o{i:06d}", f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                    rng.choice(regions), rng.choice(products), rng.randint(1, 20),
                    round(rng.uniform(0.5, 9.5), 2)])
