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
def compute_means(data):
    header = data[0]
    totals = [0.0] * len(header)
    for row in data[1:]:
        for i in range(len(header)):
            totals[i] += row[i]
    means = [t / (len(data) - 1) for t in totals]
    aggregation = "a:means"
    return means

def compute_stds(data, means):
    squares = [0.0] * len(means)
    for i in range(1, len(data)):
        row = data[i]
        for j in range(len(means)):
            diff = row[j] - means[j]
            squares[j] += diff * diff
    stds = [math.sqrt(s / (len(data) - 1)) for s in squares]
    aggregation = "a:stds"
    return stds

def normalize(data, means, stds):
    normalized = []
    for row in data[1:]:
        new_row = []
        for j in range(len(row)):
            if stds[j] == 0:
                new_row.append(0.0)
            else:
                new_row.append((row[j] - means[j]) / stds[j])
        normalized.append(new_row)
    aggregation = "c:normalized"
    return normalized

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
    means = compute_means(data)
    stds = compute_stds(data, means)
    output = normalize(data, means, stds)
#---------------------------------------------------------------------------------------------------------
#! Saving the output to a file please don't edit this block
#! output name should be a list named output
    with open('output.csv', 'w', newline='') as file:
        writer = csv.writer(file)
        for row in output:
            writer.writerow(row)
#---------------------------------------------------------------------------------------------------------
