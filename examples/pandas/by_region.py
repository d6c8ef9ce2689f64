"""Revenue per region and product: a pandas group-by over the whole table."""
import pandas as pd

orders = pd.read_csv("orders.csv")
orders["revenue"] = orders["quantity"] * orders["unit_price"]
summary = (orders.groupby(["region", "product"])
           .agg(orders=("order", "count"), quantity=("quantity", "sum"), revenue=("revenue", "sum"),
                mean_price=("unit_price", "mean"))
           .round(4)
           .reset_index())
summary.to_csv("by_region.csv", index=False)
print(f"pandas {pd.__version__}: {len(orders)} orders, {len(summary)} groups")
