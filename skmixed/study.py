"""The big-data study: simulate, fit, print estimates and timings.

``python -m skmixed.study`` (or the ``skmixed-study`` console script) simulates the
"Multilevel modelling for big data" design (2,000,000 rows in 2,000 groups by default, see
:func:`skmixed.datasets.make_multilevel`), fits the linear mixed model
``y ~ x + b + (1 | g)`` by REML with :class:`skmixed.MixedLM` for each requested thread
count, the binomial GLMM ``y_bin ~ x + b + (1 | g)`` (Laplace) with
:class:`skmixed.MixedGLM`, and with :class:`skmixed.AdditiveMixed` the study's additive
models — ``bam(y_bin ~ x + b + s(g, bs = "re"), binomial, discrete = TRUE)`` and the Gaussian
``y_nl ~ x + b + s(z, bs = "ps") + s(g, bs = "re")`` — and prints the fixed effects side by
side, the variance components beside the truth, and the wall times. With ``--out DIR`` it
also writes ``results.json`` and ``report.md`` there.
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

from ._estimators.additive_mixed import AdditiveMixed
from ._estimators.mixed_glm import MixedGLM
from ._estimators.mixed_lm import MixedLM
from .datasets import make_multilevel
from .exceptions import RankDeficientWarning, SingularFitWarning

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
    parser.add_argument("--glmm-repeats", type=_positive_int, default=1,
                        help="timed GLMM fits per thread count (default 1)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for results.json and report.md")
    return parser


def _timed_fits(model, X, y, repeats):
    # warm-up on the first rows (all groups' dtypes and kernel paths are the same):
    # Numba compilation or cache loading is not timed
    head = min(len(y), 200_000)
    model.fit(X.iloc[:head], y.iloc[:head])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(X, y)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), times


def run_study(n_obs=2_000_000, n_groups=2_000, threads=None, seed=12358, repeats=3,
              echo=print, glmm_repeats=1):
    """Simulate the study's data, fit the LMM and the GLMM, and return a dict of results.

    Parameters
    ----------
    n_obs, n_groups : int
        Size of the simulated data (``n_groups <= n_obs``).
    threads : list of int, default=None
        Thread counts to time (default ``[1, all]``).
    seed : int
    repeats : int
        Timed LMM fits per thread count (after one untimed warm-up fit).
    glmm_repeats : int
        Timed GLMM fits per thread count (after one warm-up fit).
    echo : callable
        Where progress lines go (``print``; pass ``lambda *a: None`` to silence).

    Returns
    -------
    dict
        ``data`` (sizes, seed, simulation seconds), ``truth``, ``lmm`` and ``glmm`` (fixed
        effects, variance components, criterion, timings per thread count), ``machine``.
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

    lmm, model = _fit_timed(
        lambda n_threads: MixedLM(groups="g", n_jobs=n_threads), X, y, threads, repeats,
        "MixedLM y ~ x + b + (1 | g), REML", echo)
    lmm.update(model="y ~ x + b + (1 | g)", reml_criterion=model.reml_criterion_)
    glmm, glmm_model = _fit_timed(
        lambda n_threads: MixedGLM(family="binomial", groups="g", n_jobs=n_threads),
        X, df["y_bin"], threads, glmm_repeats,
        "MixedGLM y_bin ~ x + b + (1 | g), binomial, Laplace", echo)
    glmm.update(model="y_bin ~ x + b + (1 | g), binomial (Laplace)",
                loglik=glmm_model.loglik_)
    # the additive models (binned, as bam(discrete = TRUE))
    gam, gam_model = _fit_timed(
        lambda n_threads: AdditiveMixed(groups="g", family="binomial", n_jobs=n_threads), X,
        df["y_bin"], threads, glmm_repeats,
        "AdditiveMixed y_bin ~ x + b + s(g, re), binomial", echo)
    gam.update(model='y_bin ~ x + b + s(g, bs = "re"), binomial (bam discrete)')
    amm, amm_model = _fit_timed(
        lambda n_threads: AdditiveMixed(smooths=["z"], groups="g", n_jobs=n_threads),
        df[["g", "x", "b", "z"]], df["y_nl"], threads, glmm_repeats,
        "AdditiveMixed y_nl ~ x + b + s(z) + s(g, re)", echo)
    amm.update(model='y_nl ~ x + b + s(z, bs = "ps") + s(g, bs = "re") (bam discrete)',
               edf=_records(amm_model.smooths_.reset_index()))
    return {
        "data": {"n_obs": n_obs, "n_groups": n_groups, "seed": seed,
                 "simulate_seconds": sim_seconds},
        "truth": truth,
        "lmm": lmm,
        "glmm": glmm,
        "gam": gam,
        "amm": amm,
        "machine": {"python": platform.python_version(), "numba": numba.__version__,
                    "processor": platform.processor() or platform.machine(),
                    "cores": numba.config.NUMBA_NUM_THREADS},
        "_model": model,
        "_glmm_model": glmm_model,
    }


def _records(frame):
    """A DataFrame as JSON-ready records (NaN → None)."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _fit_timed(make, X, y, threads, repeats, label, echo):
    """Fit ``make(n_threads)`` for each thread count; timings and the last model's tables."""
    timings = {}
    model = None
    for n_threads in threads:
        model = make(n_threads)
        with warnings.catch_warnings():
            # a singular fit or a dropped column is part of what the report shows;
            # non-convergence (ConvergenceWarning) stays visible
            warnings.simplefilter("ignore", category=SingularFitWarning)
            warnings.simplefilter("ignore", category=RankDeficientWarning)
            median, all_times = _timed_fits(model, X, y, repeats)
        timings[n_threads] = {"median_seconds": median, "seconds": all_times,
                              "phases": getattr(model, "optimization_", None)
                              and model.optimization_.timings}
        echo(f"{label}, {n_threads} thread(s): median {median * 1e3:.1f} ms over "
             f"{repeats} fit(s)")
    return {
        "fixed_effects": _records(model.fixed_effects_.reset_index()),
        "variance_components": _records(model.variance_components_),
        "converged": model.converged_,
        "timings": timings,
    }, model


MODELS = {"lmm": "LMM", "glmm": "GLMM", "gam": "GAM binomial", "amm": "AMM y_nl"}


def _fixed_effects_side_by_side(result):
    """Rows (term, truth, then estimate and SE per model of :data:`MODELS`)."""
    truth = result["truth"]
    true_beta = {"(Intercept)": truth.get("intercept"), "x": truth.get("beta_x"),
                 "b": truth.get("beta_b")}
    tables = {k: {r["term"]: r for r in result[k]["fixed_effects"]} for k in MODELS}
    return [(t, true_beta.get(t), *[v for k in MODELS
                                    for v in (tables[k][t]["estimate"],
                                              tables[k][t]["std_error"])])
            for t in tables["lmm"]]


def format_report(result):
    """Markdown report of :func:`run_study`'s result."""
    d, truth = result["data"], result["truth"]
    lines = [f"# skmixed big-data study: {d['n_obs']:,} rows x {d['n_groups']:,} groups",
             "", f"seed {d['seed']}; machine: {result['machine']}", "",
             *[f"{name}: `{result[k]['model']}`" for k, name in MODELS.items()],
             "", "## Fixed effects", "",
             "| term | truth | " + " | ".join(f"{n} estimate | {n} SE" for n in MODELS.values())
             + " |", "|---|---|" + "---|---|" * len(MODELS)]
    for t, tr, *values in _fixed_effects_side_by_side(result):
        lines.append(f"| {t} | {tr} | " + " | ".join(f"{v:.5f}" for v in values) + " |")
    lines += ["", "## Variance components", "", "| model | component | variance | truth |",
              "|---|---|---|---|"]
    true_var = {"g": truth.get("group_sd", np.nan) ** 2,
                "Residual": truth.get("residual_sd", np.nan) ** 2}
    for label, name in MODELS.items():
        for row in result[label]["variance_components"]:
            lines.append(f"| {name} | {row['group']} {row['var1'] or ''} | "
                         f"{row['variance']:.5f} | {true_var.get(row['group'], '')} |")
    lines += ["", "## Timings (median wall seconds, fit from the in-memory DataFrame)", "",
              "| model | threads | median fit (s) |", "|---|---|---|"]
    for label, name in MODELS.items():
        for n_threads, t in result[label]["timings"].items():
            lines.append(f"| {name} | {n_threads} | {t['median_seconds']:.4f} |")
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
    result = run_study(args.n_obs, args.n_groups, args.threads, args.seed, args.repeats,
                       glmm_repeats=args.glmm_repeats)
    print()
    print(result["_model"].summary())
    print()
    print(result["_glmm_model"].summary())
    print()
    print("fixed effects side by side (estimate (SE)):")
    print(f"  {'term':<12} {'truth':>6} " + " ".join(f"{n:>22}" for n in MODELS.values()))
    for t, tr, *values in _fixed_effects_side_by_side(result):
        cells = [f"{e:>11.5f} ({s:.5f})" for e, s in zip(values[::2], values[1::2])]
        print(f"  {t:<12} {tr!s:>6} " + " ".join(cells))
    print("truth: " + ", ".join(f"{k}={v}" for k, v in result["truth"].items()))
    print("random-effect SDs: " + ", ".join(
        f"{name} {row['group']} {np.sqrt(row['variance']):.4f}"
        for label, name in MODELS.items() for row in result[label]["variance_components"]))
    print("timings (median wall seconds, fit from the in-memory DataFrame):")
    for label, name in MODELS.items():
        for n_threads, t in result[label]["timings"].items():
            ph = t["phases"]
            extra = f" (optimization {ph['optimize']:.4f} s)" if ph else ""
            print(f"  {name:<12} {n_threads} thread(s): {t['median_seconds']:.4f} s{extra}")
    if args.out is not None:
        _write_outputs(result, args.out)
        print(f"wrote {args.out / 'results.json'} and {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
