"""The big-data study: simulate, fit, print estimates and timings.

``python -m skmixed.study`` (or the ``skmixed-study`` console script) simulates the
"Multilevel modelling for big data" design (2,000,000 rows in 2,000 groups by default, see
:func:`skmixed.datasets.make_multilevel`), fits the linear mixed model
``y ~ x + b + (1 | g)`` by REML with :class:`skmixed.MixedLM` for each requested thread
count, and prints the fixed effects, the variance components beside the truth, and the wall
times. With ``--out DIR`` it also writes ``results.json`` and ``report.md`` there.

Later issues add the GLMM and the additive model to the same run.
"""

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numba
import numpy as np

from ._estimators.mixed_lm import MixedLM
from .datasets import make_multilevel

__all__ = ["main", "run_study"]


def _positive_int(text):
    try:
        value = int(float(text)) if "e" in text.lower() else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer")
    return value


def _thread_list(text):
    values = [_positive_int(t) for t in text.split(",") if t.strip()]
    if not values:
        raise argparse.ArgumentTypeError("give at least one thread count, e.g. 1,2")
    return values


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m skmixed.study",
        description="Simulate the big-data multilevel study and fit it with skmixed.")
    parser.add_argument("--n-obs", type=_positive_int, default=2_000_000,
                        help="rows to simulate (default 2,000,000; 2e6 is accepted)")
    parser.add_argument("--n-groups", type=_positive_int, default=2_000,
                        help="groups (default 2,000)")
    parser.add_argument("--threads", type=_thread_list, default=None,
                        help="comma-separated thread counts to time, e.g. 1,2 "
                             f"(default: 1 and {numba.config.NUMBA_NUM_THREADS})")
    parser.add_argument("--seed", type=int, default=12358, help="random seed (default 12358)")
    parser.add_argument("--repeats", type=_positive_int, default=3,
                        help="timed fits per thread count; the median is reported (default 3)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for results.json and report.md")
    return parser


def _timed_fits(model, X, y, repeats):
    model.fit(X, y)  # first fit: Numba compilation (or cache load); not timed
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(X, y)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), times


def run_study(n_obs=2_000_000, n_groups=2_000, threads=None, seed=12358, repeats=3,
              echo=print):
    """Simulate the study's data, fit the LMM, and return a dict of results.

    Parameters
    ----------
    n_obs, n_groups : int
        Size of the simulated data (``n_groups <= n_obs``).
    threads : list of int, default=None
        Thread counts to time (default ``[1, all]``).
    seed : int
    repeats : int
        Timed fits per thread count (after one untimed warm-up fit).
    echo : callable
        Where progress lines go (``print``; pass ``lambda *a: None`` to silence).

    Returns
    -------
    dict
        ``data`` (sizes, seed, simulation seconds), ``truth``, ``lmm`` (fixed effects,
        variance components, REML criterion, timings per thread count), ``machine``.
    """
    if n_groups > n_obs:
        raise ValueError(f"n_groups ({n_groups}) cannot exceed n_obs ({n_obs}).")
    threads = threads or sorted({1, numba.config.NUMBA_NUM_THREADS})
    start = time.perf_counter()
    df = make_multilevel(n_obs, n_groups, random_state=seed)
    sim_seconds = time.perf_counter() - start
    truth = {k: v for k, v in df.attrs["truth"].items() if np.ndim(v) == 0}
    echo(f"simulated {n_obs:,} rows x {n_groups:,} groups in {sim_seconds:.2f} s")
    X, y = df[["g", "x", "b"]], df["y"]

    timings = {}
    model = None
    for n_threads in threads:
        model = MixedLM(groups="g", n_jobs=n_threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            median, all_times = _timed_fits(model, X, y, repeats)
        timings[n_threads] = {"median_seconds": median, "seconds": all_times,
                              "phases": model.optimization_.timings}
        echo(f"MixedLM y ~ x + b + (1 | g), REML, {n_threads} thread(s): "
             f"median {median * 1e3:.1f} ms over {repeats} fits")
    return {
        "data": {"n_obs": n_obs, "n_groups": n_groups, "seed": seed,
                 "simulate_seconds": sim_seconds},
        "truth": truth,
        "lmm": {
            "model": "y ~ x + b + (1 | g)",
            "fixed_effects": model.fixed_effects_.reset_index().to_dict(orient="records"),
            "variance_components": model.variance_components_.astype(object)
            .where(model.variance_components_.notna(), None).to_dict(orient="records"),
            "reml_criterion": model.reml_criterion_,
            "converged": model.converged_,
            "timings": timings,
        },
        "machine": {"python": platform.python_version(), "numba": numba.__version__,
                    "processor": platform.processor() or platform.machine(),
                    "cores": numba.config.NUMBA_NUM_THREADS},
        "_model": model,
    }


def format_report(result):
    """Markdown report of :func:`run_study`'s result."""
    d, lmm, truth = result["data"], result["lmm"], result["truth"]
    lines = [f"# skmixed big-data study: {d['n_obs']:,} rows x {d['n_groups']:,} groups",
             "", f"seed {d['seed']}; machine: {result['machine']}", "",
             f"## LMM `{lmm['model']}` (REML)", "",
             "| term | estimate | std. error | truth |", "|---|---|---|---|"]
    true_beta = {"(Intercept)": truth.get("intercept"), "x": truth.get("beta_x"),
                 "b": truth.get("beta_b")}
    for row in lmm["fixed_effects"]:
        lines.append(f"| {row['term']} | {row['estimate']:.5f} | {row['std_error']:.5f} | "
                     f"{true_beta.get(row['term'])} |")
    lines += ["", "| component | variance | truth |", "|---|---|---|"]
    true_var = {"g": truth.get("group_sd", np.nan) ** 2,
                "Residual": truth.get("residual_sd", np.nan) ** 2}
    for row in lmm["variance_components"]:
        lines.append(f"| {row['group']} {row['var1'] or ''} | {row['variance']:.5f} | "
                     f"{true_var.get(row['group'], '')} |")
    lines += ["", "| threads | median fit (ms) | row pass (ms) | optimization (ms) |",
              "|---|---|---|---|"]
    for n_threads, t in lmm["timings"].items():
        ph = t["phases"]
        lines.append(f"| {n_threads} | {t['median_seconds'] * 1e3:.1f} | "
                     f"{ph.get('row_pass', np.nan) * 1e3:.1f} | "
                     f"{ph.get('optimize', np.nan) * 1e3:.1f} |")
    return "\n".join(lines) + "\n"


def _write_outputs(result, out):
    """Write results.json and report.md atomically (temporary files, then rename)."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {k: v for k, v in result.items() if not k.startswith("_")}
    files = {"results.json": json.dumps(payload, indent=2, default=float),
             "report.md": format_report(result)}
    for name, text in files.items():
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)


def main(argv=None):
    """Command-line entry point (see ``--help``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.n_groups > args.n_obs:
        parser.error(f"--n-groups ({args.n_groups}) cannot exceed --n-obs ({args.n_obs})")
    result = run_study(args.n_obs, args.n_groups, args.threads, args.seed, args.repeats)
    model = result["_model"]
    print()
    print(model.summary())
    print()
    print("truth: " + ", ".join(f"{k}={v}" for k, v in result["truth"].items()))
    print("timings (median wall seconds, fit from the in-memory DataFrame):")
    for n_threads, t in result["lmm"]["timings"].items():
        ph = t["phases"]
        print(f"  {n_threads} thread(s): {t['median_seconds']:.4f} s "
              f"(row pass {ph['row_pass']:.4f} s, optimization {ph['optimize']:.4f} s)")
    if args.out is not None:
        _write_outputs(result, args.out)
        print(f"wrote {args.out / 'results.json'} and {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
