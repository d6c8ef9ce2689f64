"""Stage 1: count the words of one text."""
import collections
import json
import re

with open("text.txt", encoding="utf-8") as f:
    words = re.findall(r"[a-z']+", f.read().lower())
counts = collections.Counter(words)
with open("counts.json", "w") as f:
    json.dump(counts, f)
print(f"{len(words)} words, {len(counts)} distinct")
