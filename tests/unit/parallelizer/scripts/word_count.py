"""Word frequencies of a text column, most frequent first."""
import csv

FILE_NAME = 'texts.csv'


def count_words(rows):
    counts = {}
    for row in rows:
        for word in row[1].lower().split():
            word = word.strip('.,;:!?')
            if not word:
                continue
            if word in counts:
                counts[word] += 1
            else:
                counts[word] = 1
    return counts


def letters(rows):
    total = {}
    for row in rows:
        for ch in row[1]:
            if ch.isalpha():
                total[ch] = total.get(ch, 0) + 1
    return total


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    counts = count_words(rows)
    chars = letters(rows)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    output = [['word', 'count']] + [[w, c] for w, c in ranked[:25]]
    output.append(['distinct', len(counts)])
    output.append(['first seen', ' '.join(list(counts)[:10])])
    output.append(['letters', ' '.join(f'{k}={v}' for k, v in sorted(chars.items()))])
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
