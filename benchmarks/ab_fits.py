"""Warm whole fits of the study's four models, for comparing two checkouts in one run
(the before/after of a change to a fit path): median wall milliseconds of 9 fits at 20,000
rows × 200 groups and of 5 fits at 2,000,000 × 2,000, with 1 and 2 threads, after one
untimed fit each (compilation not timed). Run it alternately from each checkout::

    for r in 1 2; do for tree in ../before .; do
        PYTHONPATH=$tree python benchmarks/ab_fits.py; done; done

Model keys as arguments run only those (``python benchmarks/ab_fits.py glmm``). Prints one
line ``AB {json}`` per run; the data are ``make_multilevel``'s (seed 12358)."""

import json
import sys
import time
import warnings

import numpy as np

from skmixed import AdditiveMixed, MixedGLM, MixedLM
from skmixed.datasets import make_multilevel

MODELS = {
    "lmm": (lambda n: MixedLM(groups="g", n_jobs=n), ["x", "b", "g"], "y"),
    "glmm": (lambda n: MixedGLM(groups="g", n_jobs=n), ["x", "b", "g"], "y_bin"),
    "am_gauss": (lambda n: AdditiveMixed(smooths=["z"], groups="g", n_jobs=n),
                 ["x", "b", "z", "g"], "y_nl"),
    "am_binom": (lambda n: AdditiveMixed(groups="g", family="binomial", n_jobs=n),
                 ["x", "b", "g"], "y_bin"),
}


def main(keys=()):
    out = {}
    for n_obs, n_groups, repeats in ((20_000, 200, 9), (2_000_000, 2_000, 5)):
        df = make_multilevel(n_obs, n_groups, random_state=12358)
        for key, (make, cols, target) in MODELS.items():
            if keys and key not in keys:
                continue
            X, y = df[cols], df[target]
            for n_jobs in (1, 2):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    make(n_jobs).fit(X, y)
                    times = []
                    for _ in range(repeats):
                        start = time.perf_counter()
                        make(n_jobs).fit(X, y)
                        times.append(time.perf_counter() - start)
                out[f"{key}_{n_obs}_{n_jobs}t"] = float(np.median(times) * 1e3)
    print("AB " + json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
