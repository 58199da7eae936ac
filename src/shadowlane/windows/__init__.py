"""Windowed aggregation of comparisons (tumbling windows per candidate and bucket)."""
