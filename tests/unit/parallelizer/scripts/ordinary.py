"""Not in the convention: no FILE_NAME, reads its file line by line."""
import csv


def main():
    total = 0.0
    with open('numbers.csv') as f:
        next(f)
        for line in f:
            total += float(line.split(',')[0])
    with open('output.csv', 'w', newline='') as f:
        csv.writer(f).writerow(['total', total])


if __name__ == '__main__':
    main()
