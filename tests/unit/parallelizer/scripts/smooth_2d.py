"""3x3 box blur of an image stored as CSV rows: every output pixel needs the rows above and below."""
import csv

FILE_NAME = 'image.csv'


def blur(rows):
    image = [[int(v) for v in row] for row in rows]
    height, width = len(image), len(image[0])
    out = []
    for y in range(height):
        line = []
        for x in range(width):
            total = count = 0
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if 0 <= y + dy < height and 0 <= x + dx < width:
                        total += image[y + dy][x + dx]
                        count += 1
            line.append(round(total / count, 3))
        out.append(line)
    return out


if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    #-----
    blurred = blur(rows)
    output = [header] + blurred
    #-----
    with open('output.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerows(output)
    #-----
