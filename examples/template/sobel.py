##########################################################################################################
#! User defined variables
import csv
import math
FILE_NAME = 'pixels.csv'  # Name of the file to read data from
WIDTH = 6
##########################################################################################################

##########################################################################################################
#! User Code is written below this line (Note: code is written in the form of functions)
#! all functions must have a return statement
#! functions return value must be 1 value and a variable or a slice of it not an operation
#! available aggregates are c --> concatenate, a --> average, s --> sum, m --> max, n --> min, l --> length, i --> multiply, empty string for means don't parallelize
#! format aggregation = "type:list"
#! each function must have an aggregation variable just before the return statement
def sobel_edges(data):
    size = WIDTH
    results = []
    for row in data[1:]:
        image = []
        for r in range(size):
            image.append(row[r * size:(r + 1) * size])
        out = []
        for r in range(size):
            for c in range(size):
                if r == 0 or c == 0 or r == size - 1 or c == size - 1:
                    out.append(image[r][c])
                else:
                    gx = (image[r - 1][c + 1] + 2 * image[r][c + 1] + image[r + 1][c + 1]
                          - image[r - 1][c - 1] - 2 * image[r][c - 1] - image[r + 1][c - 1])
                    gy = (image[r + 1][c - 1] + 2 * image[r + 1][c] + image[r + 1][c + 1]
                          - image[r - 1][c - 1] - 2 * image[r - 1][c] - image[r - 1][c + 1])
                    out.append(round(math.sqrt(gx * gx + gy * gy), 3))
        results.append(out)
    aggregation = "c:results"
    return results

##########################################################################################################

##########################################################################################################
if __name__ == '__main__':
#---------------------------------------------------------------------------------------------------------
#! This block handles data loading please don't edit it (Note:The data is loaded into a list of name data)
    def infer_type(value):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value.strip()
    try:
        with open(FILE_NAME, 'r') as file:
            lines = file.readlines()
            data = [[infer_type(cell) for cell in line.strip().split(',')] for line in lines]
    except FileNotFoundError:
        print("File not found. Please ensure 'pixels.csv' exists in the current directory.")
#---------------------------------------------------------------------------------------------------------

#! User main function is defined here
    output = sobel_edges(data)
#---------------------------------------------------------------------------------------------------------
#! Saving the output to a file please don't edit this block
#! output name should be a list named output
    with open('output.csv', 'w', newline='') as file:
        writer = csv.writer(file)
        for row in output:
            writer.writerow(row)
#---------------------------------------------------------------------------------------------------------
