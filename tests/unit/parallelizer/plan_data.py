"""Small deterministic CSV files for the test scripts."""

from __future__ import annotations

import csv
import random
from pathlib import Path

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
         "sigma tau upsilon phi chi psi omega data chunk task worker master row").split()


def numbers(path: Path, rows: int = 900, seed: int = 1) -> Path:
    rnd = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "c", "d", "e"])
        for i in range(rows):
            w.writerow([round(rnd.uniform(-100, 100), 4), rnd.randint(-50, 50), round(rnd.gauss(0, 1e6), 2),
                        round(rnd.uniform(-100, 100), 3), (i % 7) * 0.5])
    return path


def sales(path: Path, rows: int = 800, seed: int = 2) -> Path:
    rnd = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "region", "product", "amount"])
        for i in range(rows):
            w.writerow([f"s{i:05d}", rnd.choice(["north", "south", "east", "west"]),
                        rnd.choice(["tea", "coffee", "cocoa, hot", 'say "hi"']), round(rnd.uniform(0, 1000), 2)])
    return path


def texts(path: Path, rows: int = 700, seed: int = 3) -> Path:
    rnd = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "category"])
        for i in range(rows):
            words = [rnd.choice(WORDS) for _ in range(rnd.randint(3, 15))]
            if rnd.random() < 0.1:
                words.append("Line\nbreak")
            w.writerow([f"t{i}", " ".join(words).capitalize() + ".", rnd.choice(["news", "mail", "chat"])])
    return path


def mixed(path: Path, rows: int = 600, seed: int = 4) -> Path:
    rnd = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "version", "flag", "score", "unit"])
        for i in range(rows):
            w.writerow([f"n{rnd.randint(0, 40)}", "1.0", "yes" if i != 599 else "no", rnd.randint(0, 9), "kg"])
    return path


def image(path: Path, size: int = 48, seed: int = 5) -> Path:
    rnd = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"x{i}" for i in range(size)])
        for y in range(size):
            w.writerow([min(255, max(0, (x * y) % 256 + rnd.randint(-20, 20))) for x in range(size)])
    return path


MAKERS = {"numbers.csv": numbers, "sales.csv": sales, "texts.csv": texts, "mixed.csv": mixed,
          "image.csv": image}


def make(name: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return MAKERS[name](folder / name)
