"""Writes tests/data/crossed_binomial.csv.gz, the data of lme4_crossed_binomial.R: 100,000
rows of skmixed.datasets.make_crossed (5,000 users x 1,000 items, power-law imbalance,
random_state=15), x rounded to 4 decimals so that R and Python read the same numbers.
Run from the repository root: ``python tests/reference/make_crossed_binomial.py``."""

from skmixed.datasets import make_crossed

df = make_crossed(100_000, 5_000, 1_000, random_state=15)
out = df[["user", "item", "x", "y_bin"]].assign(x=lambda d: d["x"].round(4))
out.to_csv("tests/data/crossed_binomial.csv.gz", index=False,
           compression={"method": "gzip", "mtime": 0})
