##########################################################################################################
#! User defined variables
import csv
FILE_NAME = 'measurements.csv'  # Name of the file to read data from
##########################################################################################################

##########################################################################################################
#! User Code is written below this line (Note: code is written in the form of functions)
#! all functions must have a return statement
#! functions return value must be 1 value and a variable or a slice of it not an operation
#! available aggregates are c --> concatenate, a --> average, s --> sum, m --> max, n --> min, l --> length, i --> multiply, empty string for means don't parallelize
#! format aggregation = "type:list"
#! each function must have an aggregation variable just before the return statement
def column_max(data):
    maxima = [None] * len(data[0])
    for row in data[1:]:
        for i, value in enumerate(row):
            if maxima[i] is None or value > maxima[i]:
                maxima[i] = value
    aggregation = "m:maxima"
    return maxima

def column_min(data):
    minima = [float('inf')] * len(data[0])
    for row in data[1:]:
        for i in range(len(row)):
            minima[i] = min(minima[i], row[i])
    aggregation = "n:minima"
    return minima

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
    maxima = column_max(data)
    minima = column_min(data)
    output = [data[0], maxima, minima]
#---------------------------------------------------------------------------------------------------------
#! Saving the output to a file please don't edit this block
#! output name should be a list named output
    with open('output.csv', 'w', newline='') as file:
        writer = csv.writer(file)
        for row in output:
            writer.writerow(row)
#---------------------------------------------------------------------------------------------------------
