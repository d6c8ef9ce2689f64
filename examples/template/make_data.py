"""Data for the template examples: `python3 make_data.py [ROWS]` writes measurements.csv and
pixels.csv (a header line, then ROWS lines; 100,000 by default)."""

from __future__ import annotations

import random
import sys
from pathlib import Path


def measurements(path: Path, rows: int, seed: int = 1) -> Path:
    """Mixed ints and floats; the column `unit` is the same on every line."""
    rnd = random.Random(seed)
    with open(path, "w") as f:
        f.write("temperature,humidity,pressure,unit,level,wind\n")
        for _ in range(rows):
            f.write(f"{rnd.uniform(-20, 45):.3f},{rnd.randint(0, 100)},{rnd.gauss(1013, 9):.2f},1,"
                    f"{rnd.randint(-500, 500)},{rnd.expovariate(0.1):.4f}\n")
    return path


def pixels(path: Path, rows: int, width: int = 6, seed: int = 2) -> Path:
    """Each line: one width × width grey image, row by row."""
    rnd = random.Random(seed)
    with open(path, "w") as f:
        f.write(",".join(f"p{i + 1}" for i in range(width * width)) + "\n")
        for _ in range(rows):
            base = rnd.randint(0, 200)
            f.write(",".join(str(min(255, base + rnd.randint(0, 55))) for _ in range(width * width)) + "\n")
    return path


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    here = Path(__file__).parent
    print(measurements(here / "measurements.csv", n), pixels(here / "pixels.csv", n))
