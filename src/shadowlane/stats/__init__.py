"""Statistics behind rollout gates, staged rollout and the report: tests, intervals, alpha spending.

Pure functions over counts, sums and samples (raw arrays or weighted ``(value, count)`` pairs read
from histograms); numpy only, no scipy at runtime. Results are frozen dataclasses.
"""
