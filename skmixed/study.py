"""The big-data study: simulate, fit, print estimates and timings.

``python -m skmixed.study`` (or the ``skmixed-study`` console script) simulates the
"Multilevel modelling for big data" design (2,000,000 rows in 2,000 groups by default, see
[`make_multilevel`][skmixed.datasets.make_multilevel]), fits the linear mixed model
``y ~ x + b + (1 | g)`` by REML with [`MixedLM`][skmixed.MixedLM] for each requested thread
count, the binomial GLMM ``y_bin ~ x + b + (1 | g)`` (Laplace) with
[`MixedGLM`][skmixed.MixedGLM], and with [`AdditiveMixed`][skmixed.AdditiveMixed] the study's
additive models — ``bam(y_bin ~ x + b + s(g, bs = "re"), binomial, discrete = TRUE)`` and
the Gaussian ``y_nl ~ x + b + s(z, bs = "ps") + s(g, bs = "re")`` — and prints the fixed
effects side by side, the variance components beside the truth, and the wall times. With
``--out DIR`` it also writes ``results.json`` and ``report.md`` there.
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

__all__ = ["main", "run_study", "thread_study", "describe_thread_study"]


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


def _model_list(text):
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in MODELS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown model name(s) {unknown or [text]}; choose from {', '.join(MODELS)}")
    return [m for m in MODELS if m in names]


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
                             f"(default: 1 and all threads, here "
                             f"{numba.config.NUMBA_NUM_THREADS})")
    parser.add_argument("--seed", type=int, default=12358, help="random seed (default 12358)")
    parser.add_argument("--repeats", type=_positive_int, default=3,
                        help="timed fits per thread count; the median is reported (default 3)")
    parser.add_argument("--glmm-repeats", type=_positive_int, default=1,
                        help="timed GLMM fits per thread count (default 1)")
    parser.add_argument("--models", type=_model_list, default=list(MODELS),
                        help="comma-separated models to fit: lmm (MixedLM), glmm (MixedGLM "
                             "binomial), gam (AdditiveMixed binomial, s(g, re)), amm "
                             "(AdditiveMixed y_nl with s(z)); default all")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for results.json, report.md and (with matplotlib) the "
                             "report's plots")
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
              echo=print, glmm_repeats=1, models=None, progress=None):
    """Simulate the study's data, fit the requested models, and return a dict of results.

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
        Timed fits per thread count of the other models (after one warm-up fit).
    echo : callable
        Where progress lines go (``print``; pass ``lambda *a: None`` to silence).
    models : list of str, default=None
        Keys of `MODELS` to fit (default all).
    progress : bool or None
        A tqdm bar over the steps (None: only on a terminal).

    Returns
    -------
    dict
        ``data`` (sizes, seed, simulation seconds), ``truth``, one entry per fitted model
        (fixed effects, variance components, timings per thread count, the thread study),
        ``machine``.
    """
    from tqdm.auto import tqdm

    if n_groups > n_obs:
        raise ValueError(f"n_groups ({n_groups}) cannot exceed n_obs ({n_obs}).")
    models = list(MODELS) if models is None else [m for m in MODELS if m in models]
    threads = threads or sorted({1, numba.config.NUMBA_NUM_THREADS})
    bar = tqdm(total=1 + len(models), disable=None if progress is None else not progress,
               desc="skmixed study", unit="step")
    start = time.perf_counter()
    df = make_multilevel(n_obs, n_groups, random_state=seed)
    sim_seconds = time.perf_counter() - start
    bar.update()
    truth = {k: v for k, v in df.attrs["truth"].items() if np.ndim(v) == 0}
    echo(f"simulated {n_obs:,} rows x {n_groups:,} groups in {sim_seconds:.2f} s")
    X = df[["g", "x", "b"]]
    specs = {
        "lmm": (lambda n: MixedLM(groups="g", n_jobs=n), X, df["y"], repeats,
                "MixedLM y ~ x + b + (1 | g), REML", "y ~ x + b + (1 | g)"),
        "glmm": (lambda n: MixedGLM(family="binomial", groups="g", n_jobs=n), X, df["y_bin"],
                 glmm_repeats, "MixedGLM y_bin ~ x + b + (1 | g), binomial, Laplace",
                 "y_bin ~ x + b + (1 | g), binomial (Laplace)"),
        "gam": (lambda n: AdditiveMixed(groups="g", family="binomial", n_jobs=n), X,
                df["y_bin"], glmm_repeats, "AdditiveMixed y_bin ~ x + b + s(g, re), binomial",
                'y_bin ~ x + b + s(g, bs = "re"), binomial (bam discrete)'),
        "amm": (lambda n: AdditiveMixed(smooths=["z"], groups="g", n_jobs=n),
                df[["g", "x", "b", "z"]], df["y_nl"], glmm_repeats,
                "AdditiveMixed y_nl ~ x + b + s(z) + s(g, re)",
                'y_nl ~ x + b + s(z, bs = "ps") + s(g, bs = "re") (bam discrete)'),
    }
    result = {"data": {"n_obs": n_obs, "n_groups": n_groups, "seed": seed,
                       "simulate_seconds": sim_seconds},
              "truth": truth, "models": models,
              "machine": {"python": platform.python_version(), "numba": numba.__version__,
                          "processor": platform.processor() or platform.machine(),
                          "cores": numba.config.NUMBA_NUM_THREADS}}
    for key in models:
        make, Xk, yk, reps, label, formula = specs[key]
        entry, model = _fit_timed(make, Xk, yk, threads, reps, label, echo)
        entry["model"] = formula
        entry["thread_study"] = thread_study(entry["timings"])
        if key == "lmm":
            entry["reml_criterion"] = model.reml_criterion_
        elif key == "glmm":
            entry["loglik"] = model.loglik_
        elif key == "amm":
            entry["edf"] = _records(model.smooths_.reset_index())
            grid = np.linspace(0.0, 1.0, 101)
            band = model.partial_effect("z", grid)
            truth_z = np.sin(2 * np.pi * grid)
            entry["smooth_z"] = {"z": grid.tolist(), "estimate": band["effect"].tolist(),
                                 "lower": band["lower"].tolist(),
                                 "upper": band["upper"].tolist(),
                                 "truth": (truth_z - truth_z.mean()).tolist()}
        result[key] = entry
        result[f"_{key}_model"] = model
        result[f"_{key}_data"] = (Xk, yk)  # for the summary's scaled residuals
        bar.update()
    # wall time vs rows: each model on random subsets of 1/16 to 1/2 of the rows, the faster
    # of two fits (at the default size the kernels are those already compiled)
    smallest = max(10 * n_groups, 10_000)
    sizes = [n_obs // k for k in SCALING_FRACTIONS if n_obs // k >= smallest]
    skipped = [n_obs // k for k in SCALING_FRACTIONS if n_obs // k < smallest]
    if skipped and models:
        echo(f"wall time vs rows: subsets of {', '.join(f'{n:,}' for n in skipped)} rows "
             f"skipped (fewer than {smallest:,}: 10 rows per group and 10,000 at least)")
    result["scaling"] = {}
    for key in models if sizes else ():
        make, Xk, yk, *_ = specs[key]
        points = []
        for size in sizes:
            rows = np.random.default_rng(seed).choice(n_obs, size, replace=False)
            rows.sort()
            Xs, ys = Xk.iloc[rows], yk.iloc[rows]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # a first fit compiles what this size needs (kernels differ below 100,000
                # rows); a second one is timed too
                start = time.perf_counter()
                make(threads[-1]).fit(Xs, ys)
                first = time.perf_counter() - start
                start = time.perf_counter()
                make(threads[-1]).fit(Xs, ys)
            # the faster of the two (the first may include compilation; the machine's noise)
            points.append({"n_obs": int(size),
                           "seconds": min(first, time.perf_counter() - start),
                           "first_seconds": first})
        points.append({"n_obs": n_obs, "seconds": result[key]["timings"][threads[-1]][
            "median_seconds"]})
        result["scaling"][key] = points
    bar.close()
    return result


def thread_study(timings):
    """Speed-up from 1 thread to the most timed and the serial fraction it implies by
    Amdahl's law, ``S(n) = 1 / (s + (1 − s)/n)`` → ``s = (n/S − 1)/(n − 1)``: where more
    threads stop paying (S → 1/s). None without both 1 and more threads. A speed-up of 1 or
    less measured no gain from threads at all, so it implies no serial fraction
    (``serial_fraction`` and ``max_speedup`` None)."""
    counts = sorted(int(k) for k in timings)
    if 1 not in counts or counts[-1] == 1:
        return None
    n = counts[-1]
    t1, tn = timings[1]["median_seconds"], timings[n]["median_seconds"]
    speedup = t1 / tn
    if speedup <= 1.0:
        return {"threads": n, "speedup": speedup, "serial_fraction": None,
                "max_speedup": None}
    serial = min(1.0, max(0.0, (n / speedup - 1.0) / (n - 1.0)))
    return {"threads": n, "speedup": speedup, "serial_fraction": serial,
            "max_speedup": (1.0 / serial) if serial > 0 else float("inf")}


def describe_thread_study(st):
    """One line of [`thread_study`][skmixed.study.thread_study]'s result for people."""
    text = f"speed-up x{st['speedup']:.2f} on {st['threads']} threads"
    if st["serial_fraction"] is None:
        return text + " (no gain from threads measured: no Amdahl serial fraction)"
    return text + f"; Amdahl serial fraction {st['serial_fraction']:.2f}"


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


#: the subsets of the rows refitted for the wall time vs rows (1/16, 1/8, 1/4, 1/2)
SCALING_FRACTIONS = (16, 8, 4, 2)

MODELS = {"lmm": "LMM", "glmm": "GLMM", "gam": "GAM binomial", "amm": "AMM y_nl"}


def _fixed_effects_side_by_side(result):
    """Rows (term, truth, then estimate and SE per model of `MODELS`)."""
    truth = result["truth"]
    true_beta = {"(Intercept)": truth.get("intercept"), "x": truth.get("beta_x"),
                 "b": truth.get("beta_b")}
    keys = result["models"]
    tables = {k: {r["term"]: r for r in result[k]["fixed_effects"]} for k in keys}
    return [(t, true_beta.get(t), *[v for k in keys
                                    for v in (tables[k][t]["estimate"],
                                              tables[k][t]["std_error"])])
            for t in tables[keys[0]]]


def format_report(result, plots=()):
    """Markdown report of [`run_study`][skmixed.study.run_study]'s result (``plots``: image
    files beside it)."""
    d, truth = result["data"], result["truth"]
    keys = result["models"]
    names = [MODELS[k] for k in keys]
    lines = [f"# skmixed big-data study: {d['n_obs']:,} rows x {d['n_groups']:,} groups",
             "", f"seed {d['seed']}; machine: {result['machine']}", "",
             *[f"{MODELS[k]}: `{result[k]['model']}`" for k in keys],
             "", "## Fixed effects", "",
             "| term | truth | " + " | ".join(f"{n} estimate | {n} SE" for n in names)
             + " |", "|---|---|" + "---|---|" * len(keys)]
    for t, tr, *values in _fixed_effects_side_by_side(result):
        lines.append(f"| {t} | {tr} | " + " | ".join(f"{v:.5f}" for v in values) + " |")
    lines += ["", "## Variance components", "", "| model | component | variance | truth |",
              "|---|---|---|---|"]
    true_var = {"g": truth.get("group_sd", np.nan) ** 2,
                "Residual": truth.get("residual_sd", np.nan) ** 2}
    for k in keys:
        for row in result[k]["variance_components"]:
            lines.append(f"| {MODELS[k]} | {row['group']} {row['var1'] or ''} | "
                         f"{row['variance']:.5f} | {true_var.get(row['group'], '')} |")
    lines += ["", "## Timings (median wall seconds, fit from the in-memory DataFrame)", "",
              "| model | threads | median fit (s) |", "|---|---|---|"]
    for k in keys:
        for n_threads, t in result[k]["timings"].items():
            lines.append(f"| {MODELS[k]} | {n_threads} | {t['median_seconds']:.4f} |")
    studies = [(k, result[k]["thread_study"]) for k in keys if result[k]["thread_study"]]
    if studies:
        lines += ["", "## Threads (Amdahl)", "",
                  "Speed-up from 1 thread to n and the serial fraction s it implies "
                  "(S(n) = 1/(s + (1 - s)/n)); more threads cannot beat 1/s.", "",
                  "| model | n | speed-up | serial fraction | speed-up limit |",
                  "|---|---|---|---|---|"]
        for k, st in studies:
            if st["serial_fraction"] is None:
                lines.append(f"| {MODELS[k]} | {st['threads']} | {st['speedup']:.2f} | "
                             "none (no gain measured) | |")
                continue
            lines.append(f"| {MODELS[k]} | {st['threads']} | {st['speedup']:.2f} | "
                         f"{st['serial_fraction']:.2f} | {st['max_speedup']:.1f} |")
    if result.get("scaling"):
        lines += ["", "## Wall time vs rows (all threads; random subsets of the rows)", "",
                  "| model | rows | fit (s) |", "|---|---|---|"]
        for k, points in result["scaling"].items():
            lines += [f"| {MODELS[k]} | {p['n_obs']:,} | {p['seconds']:.4f} |"
                      for p in points]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _plots(result, folder):
    """The report's figures (matplotlib, optional): wall time per thread count, the fixed
    effects across models with 2-SE bars, the estimated smooth of z against the truth.
    Written under temporary names; returns ``[(temporary, final name)]``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    keys = result["models"]
    made = []

    def save(fig, name):
        tmp = folder / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        plt.close(fig)
        made.append((tmp, name))

    d = result["data"]
    size = f"{d['n_obs']:,} rows × {d['n_groups']:,} groups"
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    top, counts = 1, [1]
    for k in keys:
        counts = sorted(int(n) for n in result[k]["timings"])
        t1 = result[k]["timings"][counts[0]]["median_seconds"]
        ax.plot(counts, [t1 / result[k]["timings"][n]["median_seconds"] for n in counts],
                "o-", label=MODELS[k])
        top = max(top, counts[-1])
    ax.plot([1, top], [1, top], ":", color="grey", label="ideal (linear)")
    ax.axhline(1.0, ls="--", lw=0.8, color="black", label="no gain")
    ax.set_xticks(counts)
    ax.set(xlabel="threads (n_jobs)",
           ylabel=f"speed-up ({counts[0]}-thread time / time)",
           title=f"Whole-fit speed-up vs threads, {size}")
    ax.legend(fontsize="small")
    save(fig, "threads.png")
    if result.get("scaling"):
        from matplotlib.ticker import NullFormatter

        fig, ax = plt.subplots(figsize=(6.5, 3.8))
        n_rows = sorted({p["n_obs"] for points in result["scaling"].values() for p in points})
        for k, points in result["scaling"].items():
            ax.loglog([p["n_obs"] for p in points], [p["seconds"] for p in points], "o-",
                      label=MODELS[k])
        ax.set_xticks(n_rows, [f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}k"
                               for n in n_rows])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(xlabel="rows (random subsets of the data)", ylabel="wall time of one fit (s)",
               title=f"Wall time vs rows, {max(counts)} thread(s), compilation not counted")
        ax.legend(fontsize="small")
        save(fig, "rows.png")
    rows = _fixed_effects_side_by_side(result)
    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 0.5 * len(keys) + 1.8),
                             sharey=True, layout="constrained")
    for i, (ax, (term, tr, *values)) in enumerate(zip(np.atleast_1d(axes), rows)):
        est, se = values[::2], values[1::2]
        ax.errorbar(est, range(len(keys)), xerr=2 * np.asarray(se), fmt="o",
                    label="estimate ± 2 SE")
        if tr is not None:
            ax.axvline(tr, color="grey", lw=1.0, ls="--", label="simulated truth")
        ax.set_yticks(range(len(keys)), [MODELS[k] for k in keys])
        ax.set_title(term)
        ax.set_xlabel("estimate ± 2 SE (link scale)")
        ax.tick_params(axis="x", labelrotation=30)
        if i == 0:
            ax.legend(fontsize="small", loc="lower left", bbox_to_anchor=(0.0, 1.12))
    np.atleast_1d(axes)[0].invert_yaxis()  # the models top to bottom as in the tables
    fig.suptitle(f"Fixed effects by model, {size}")
    save(fig, "fixed_effects.png")
    if "amm" in keys:
        sz = result["amm"]["smooth_z"]
        fig, ax = plt.subplots(figsize=(6, 3.8))
        ax.fill_between(sz["z"], sz["lower"], sz["upper"], alpha=0.3,
                        label="95 % band (narrow at this size)")
        ax.plot(sz["z"], sz["estimate"], label="estimate")
        ax.plot(sz["z"], sz["truth"], "--", label="truth sin(2πz), centred")
        ax.set(xlabel="z", ylabel="s(z), units of y_nl (centred)",
               title=f"Estimated smooth s(z) of y_nl (AMM) vs truth, {size}")
        ax.legend(fontsize="small")
        save(fig, "smooth_z.png")
    return made


def _write_outputs(result, out):
    """Write results.json, report.md and the plots atomically: every file under a
    temporary name first, renamed only when all are written (a failure leaves no
    half-written report)."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {k: v for k, v in result.items() if not k.startswith("_")}
    written = []
    try:
        plots = _plots(result, out)
        written += [tmp for tmp, _ in plots]
        files = {"results.json": json.dumps(payload, indent=2, default=float),
                 "report.md": format_report(result, [name for _, name in plots])}
        for name, text in files.items():
            tmp = out / f".{name}.tmp"
            tmp.write_text(text)
            written.append(tmp)
            plots.append((tmp, name))
    except BaseException:
        for tmp in written:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, name in plots:
        tmp.replace(out / name)


def main(argv=None):
    """Command-line entry point (see ``--help``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.n_groups > args.n_obs:
        parser.error(f"--n-groups ({args.n_groups}) cannot exceed --n-obs ({args.n_obs})")
    result = run_study(args.n_obs, args.n_groups, args.threads, args.seed, args.repeats,
                       glmm_repeats=args.glmm_repeats, models=args.models)
    keys = result["models"]
    for k in ("lmm", "glmm"):
        if k in keys:
            print()
            print(result[f"_{k}_model"].summary(*result[f"_{k}_data"]))
    print()
    print("fixed effects side by side (estimate (SE)):")
    print(f"  {'term':<12} {'truth':>6} " + " ".join(f"{MODELS[k]:>22}" for k in keys))
    for t, tr, *values in _fixed_effects_side_by_side(result):
        cells = [f"{e:>11.5f} ({s:.5f})" for e, s in zip(values[::2], values[1::2])]
        print(f"  {t:<12} {tr!s:>6} " + " ".join(cells))
    print("truth: " + ", ".join(f"{k}={v}" for k, v in result["truth"].items()))
    print("random-effect SDs: " + ", ".join(
        f"{MODELS[k]} {row['group']} {np.sqrt(row['variance']):.4f}"
        for k in keys for row in result[k]["variance_components"]))
    print("timings (median wall seconds, fit from the in-memory DataFrame):")
    for k in keys:
        for n_threads, t in result[k]["timings"].items():
            ph = t["phases"]
            extra = f" (optimization {ph['optimize']:.4f} s)" if ph and "optimize" in ph else ""
            print(f"  {MODELS[k]:<12} {n_threads} thread(s): {t['median_seconds']:.4f} s"
                  f"{extra}")
        st = result[k]["thread_study"]
        if st:
            print(f"  {MODELS[k]:<12} {describe_thread_study(st)}")
    if args.out is not None:
        _write_outputs(result, args.out)
        print(f"wrote {args.out / 'results.json'} and {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
