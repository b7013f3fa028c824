"""The benchmarks behind `vidgan bench`: each prints a table and writes JSON to --out (default:
the per-user cache's results/). Speeds are compared side by side within one run (ratios),
because the machines are shared. One module per benchmark; results.py and clips.py are shared.
"""
