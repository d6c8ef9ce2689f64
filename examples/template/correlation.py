##########################################################################################################
#! User defined variables
import csv
import math
FILE_NAME = 'measurements.csv'  # Name of the file to read data from
##########################################################################################################

##########################################################################################################
#! User Code is written below this line (Note: code is written in the form of functions)
#! all functions must have a return statement
#! functions return value must be 1 value and a variable or a slice of it not an operation
#! available aggregates are c --> concatenate, a --> average, s --> sum, m --> max, n --> min, l --> length, i --> multiply, empty string for means don't parallelize
#! format aggregation = "type:list"
#! each function must have an aggregation variable just before the return statement
def correlation_matrix(data):
    k = len(data[0])
    n = len(data) - 1
    sx = [0.0] * k
    sxx = [0.0] * k
    sxy = [[0.0] * k for _ in range(k)]
    for row in data[1:]:
        for i in range(k):
            sx[i] += row[i]
            sxx[i] += row[i] * row[i]
            for j in range(k):
                sxy[i][j] += row[i] * row[j]
    matrix = []
    for i in range(k):
        line = []
        for j in range(k):
            cov = sxy[i][j] / n - (sx[i] / n) * (sx[j] / n)
            vi = sxx[i] / n - (sx[i] / n) ** 2
            vj = sxx[j] / n - (sx[j] / n) ** 2
            line.append(cov / math.sqrt(vi * vj) if vi > 0 and vj > 0 else 0.0)
        matrix.append(line)
    aggregation = "c:matrix"
    return matrix

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
        print("File not found. Please ensure 'measurements.csv' exists in the current directory.")
#---------------------------------------------------------------------------------------------------------

#! User main function is defined here
    matrix = correlation_matrix(data)
    output = [data[0]] + matrix
#---------------------------------------------------------------------------------------------------------
#! Saving the output to a file please don't edit this block
#! output name should be a list named output
    with open('output.csv', 'w', newline='') as file:
        writer = csv.writer(file)
        for row in output:
            writer.writerow(row)
#---------------------------------------------------------------------------------------------------------
