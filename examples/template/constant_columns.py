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
def column_ranges(data):
    lows = [None] * len(data[0])
    highs = [None] * len(data[0])
    for row in data[1:]:
        for i in range(len(row)):
            if lows[i] is None or row[i] < lows[i]:
                lows[i] = row[i]
            if highs[i] is None or row[i] > highs[i]:
                highs[i] = row[i]
    constant = []
    for i in range(len(lows)):
        if lows[i] == highs[i]:
            constant.append(data[0][i])
    aggregation = "c:constant"
    return constant

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
    constant = column_ranges(data)
    output = [['constant columns'] + constant]
#---------------------------------------------------------------------------------------------------------
#! Saving the output to a file please don't edit this block
#! output name should be a list named output
    with open('output.csv', 'w', newline='') as file:
        writer = csv.writer(file)
        for row in output:
            writer.writerow(row)
#---------------------------------------------------------------------------------------------------------
