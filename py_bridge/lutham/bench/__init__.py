"""`lutham bench`: LUTHAM against what KAN users run today (compare.py)."""
