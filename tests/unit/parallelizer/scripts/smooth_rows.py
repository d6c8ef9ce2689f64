"""Smooth each line of an image (stored as CSV rows of pixel values) with a 1x3 box filter."""
import csv

FILE_NAME = 'image.csv'


def smooth_lines(rows):
    out = []
    for row in rows:
        pixels = [int(v) for v in row]
        width = len(pixels)
        line = []
        for x in range(width):
            window = pixels[max(0, x - 1):min(width, x + 2)]
            line.append(round(sum(window) / len(window), 3))
        out.append(line)
    return out


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    smoothed = smooth_lines(rows)
    output = [header] + smoothed
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
