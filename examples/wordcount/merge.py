"""Stage 2: merge the two counts and write the most common words."""
import collections
import json

total = collections.Counter()
for name in ("a.json", "b.json"):
    with open(name) as f:
        total.update(json.load(f))
with open("top.txt", "w") as f:
    for word, n in total.most_common(10):
        f.write(f"{word} {n}\n")
print(f"{sum(total.values())} words in all")
