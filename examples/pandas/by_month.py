"""Revenue per month, with each month's best-selling product."""
import pandas as pd

orders = pd.read_csv("orders.csv", parse_dates=["date"])
orders["revenue"] = orders["quantity"] * orders["unit_price"]
orders["month"] = orders["date"].dt.strftime("%Y-%m")
monthly = orders.groupby("month").agg(revenue=("revenue", "sum"), orders=("order", "count")).round(4)
best = orders.groupby(["month", "product"])["quantity"].sum().reset_index()
best = best.sort_values(["month", "quantity", "product"], ascending=[True, False, True]).groupby("month").head(1)
monthly["top_product"] = best.set_index("month")["product"]
monthly.reset_index().to_csv("by_month.csv", index=False)
print(f"pandas {pd.__version__}: {len(monthly)} months")
