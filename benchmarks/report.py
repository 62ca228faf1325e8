"""Turn a pytest-benchmark JSON file into a Markdown table of medians, and (``--threads``)
the thread study: per estimator the speed-up from 1 thread to the most timed and the
serial fraction Amdahl's law implies, with a plot of wall time vs threads (``--plot``).

    python -m pytest benchmarks --benchmark-json=bench.json
    python benchmarks/report.py bench.json > table.md
    python -m pytest benchmarks/test_bench_threads.py --bench-full --benchmark-json=t.json
    python benchmarks/report.py t.json --threads --plot threads.png > threads.md
    python benchmarks/report.py --page a.json b.json --plot docs/medians.png > page.md
    python -m pytest benchmarks/test_bench_threads.py -k speedup --bench-full \
        --benchmark-json=s1.json   # (repeated: s2.json, ...)
    python benchmarks/report.py --speedups s1.json s2.json > speedups.md
    python -m pytest benchmarks/test_bench_first_use.py --benchmark-json=f1.json  # (f2 ...)
    python benchmarks/report.py --first-use f1.json f2.json > first_use.md
"""

import json
import sys

import numpy as np

from skmixed.study import thread_study as amdahl


def table(path):
    data = json.load(open(path))
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw") or machine.get("processor", "")
    lines = [f"Machine: {cpu}, {machine.get('cpu', {}).get('count', '?')} cores; "
             f"{data.get('datetime', '')[:10]}.", "",
             "| benchmark | median (ms) | min (ms) | rounds | notes |", "|---|---|---|---|---|"]
    for b in sorted(data["benchmarks"], key=lambda b: b["fullname"]):
        extra = b.get("extra_info", {})
        notes = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in extra.items()
                          if k in ("n_jobs", "peak_mb", "speedup", "median_1_thread_ms",
                                   "median_2_threads_ms", "n_evals", "skmixed_seconds",
                                   "peer", "peer_seconds", "n_obs"))
        s = b["stats"]
        lines.append(f"| `{b['name']}` | {s['median'] * 1e3:.2f} | {s['min'] * 1e3:.2f} | "
                     f"{s['rounds']} | {notes} |")
    return "\n".join(lines)


def page(paths, plot=None):
    """A Markdown page of several JSON files' tables (one section per file) and a bar chart
    of the medians per benchmark function (``plot``, matplotlib), for docs/."""
    parts, medians = [], {}
    for path in paths:
        data = json.load(open(path))
        parts += [f"## {path.split('/')[-1]}", "", table(path), ""]
        for b in data["benchmarks"]:
            medians.setdefault(b["name"].split("[")[0], []).append(
                (b["name"], b["stats"]["median"]))
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        groups = sorted(medians)
        fig, axes = plt.subplots(len(groups), 1, figsize=(7, 1.2 + 0.28 * sum(
            len(v) for v in medians.values())), squeeze=False)
        for ax, name in zip(axes[:, 0], groups):
            labels, values = zip(*sorted(medians[name]))
            ax.barh(range(len(values)), np.asarray(values) * 1e3)
            ax.set_yticks(range(len(values)), [lab.replace(name, "") or name
                                                for lab in labels], fontsize=7)
            ax.set_title(name, fontsize=8)
            ax.set_xscale("log")
        axes[-1, 0].set_xlabel("median (ms, log scale)")
        fig.tight_layout()
        fig.savefig(plot, dpi=100)
        parts += [f"![medians]({plot.split('/')[-1]})", ""]
    return "\n".join(parts)


def thread_study(path, plot=None):
    """Markdown rows: estimator, threads, median (ms), speed-up, serial fraction, limit."""
    data = json.load(open(path))
    by = {}
    for b in data["benchmarks"]:
        extra = b.get("extra_info", {})
        if "estimator" in extra and "n_jobs" in extra:
            by.setdefault(extra["estimator"], {})[int(extra["n_jobs"])] = b["stats"]["median"]
    lines = ["| estimator | threads | median (ms) | speed-up | serial fraction (Amdahl) | "
             "speed-up limit |", "|---|---|---|---|---|---|"]
    for name, times in sorted(by.items()):
        t1 = times.get(1)
        for n in sorted(times):
            if n == 1 or t1 is None:
                lines.append(f"| {name} | {n} | {times[n] * 1e3:.1f} | | | |")
                continue
            st = amdahl({1: {"median_seconds": t1}, n: {"median_seconds": times[n]}})
            if st["serial_fraction"] is None:
                lines.append(f"| {name} | {n} | {times[n] * 1e3:.1f} | {st['speedup']:.2f} | "
                             "none (no gain measured) | |")
                continue
            limit = f"{st['max_speedup']:.1f}" if st["serial_fraction"] > 0 else "∞"
            lines.append(f"| {name} | {n} | {times[n] * 1e3:.1f} | {st['speedup']:.2f} | "
                         f"{st['serial_fraction']:.2f} | {limit} |")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        for name, times in sorted(by.items()):
            counts = sorted(times)
            ax.plot(counts, [times[n] * 1e3 for n in counts], "o-", label=name)
        ax.set(xlabel="threads", ylabel="median fit (ms)", title="wall time vs threads")
        ax.legend()
        fig.savefig(plot, dpi=110, bbox_inches="tight")
    return "\n".join(lines)


def first_use(paths):
    """Markdown rows of ``test_bench_first_use.py`` (one or several runs): per case the
    measured seconds of each run beside its target."""
    names = {"test_import_cold": ("`import skmixed` (its own modules' import time)", "own_s"),
             "test_first_fit_cold[mixedlm_sleepstudy]": ("first MixedLM fit, sleepstudy "
                                                         "`(Days \\| Subject)`", "fit_s"),
             "test_first_fit_cold[mixedglm_binomial_20000]": (
                 "first binomial MixedGLM (Laplace), 20,000 rows × 200 groups", "fit_s"),
             "test_first_fit_cold[mixedglm_binomial_200000]": (
                 "first binomial MixedGLM, 200,000 rows × 2,000 groups (generated kernels)",
                 "fit_s"),
             "test_first_fit_cold[additive_one_smooth]": (
                 "first AdditiveMixed, one smooth, 20,000 rows × 200 groups", "fit_s"),
             "test_first_fit_cold[additive_binomial_one_smooth]": (
                 "first binomial AdditiveMixed, one smooth, 20,000 rows", "fit_s"),
             "test_study_cold": ("`python -m skmixed.study` (wall)", "wall_s"),
             "test_next_process_loads_the_cache": (
                 "the same MixedGLM fit in the next process (cache filled)", "fit_s")}
    runs = [{b["name"]: b["extra_info"] for b in json.load(open(p))["benchmarks"]}
            for p in paths]
    lines = ["| first call, empty caches | target (s) | " + " | ".join(
        f"run {k} (s)" for k in range(1, len(runs) + 1)) + " |",
        "|---|---|" + "---|" * len(runs)]
    for name, (label, key) in names.items():
        cells = [f"{r[name][key]:.2f}" if name in r else "" for r in runs]
        target = next((r[name]["target_s"] for r in runs if name in r), None)
        if target is not None:
            lines.append(f"| {label} | ≤ {target:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def speedups(paths):
    """Markdown rows of ``test_whole_fit_speedup`` (one or several runs): per estimator and
    run, the medians with 1 and 2 threads and the median speed-up over the alternating
    pairs with its spread (min–max)."""
    lines = ["| estimator | rows | run | 1 thread (ms) | 2 threads (ms) | speed-up: median "
             "(min–max over pairs) |", "|---|---|---|---|---|---|"]
    rows = []
    for run, path in enumerate(paths, 1):
        for b in json.load(open(path))["benchmarks"]:
            e = b.get("extra_info", {})
            if "speedup_min" in e:
                rows.append((e["estimator"], run, e))
    for name, run, e in sorted(rows, key=lambda r: (r[0], r[1])):
        lines.append(f"| {name} | {e['n_obs']:,} | {run} | {e['median_1_thread_ms']:.1f} | "
                     f"{e['median_2_threads_ms']:.1f} | {e['speedup']:.2f} "
                     f"({e['speedup_min']:.2f}–{e['speedup_max']:.2f}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--first-use" in args:  # report.py --first-use run1.json run2.json ...
        print(first_use([a for a in args if a.endswith(".json")]))
        sys.exit()
    if "--speedups" in args:  # report.py --speedups run1.json run2.json ...
        print(speedups([a for a in args if a.endswith(".json")]))
        sys.exit()
    if "--page" in args:  # report.py --page a.json b.json ... [--plot medians.png]
        plot = args[args.index("--plot") + 1] if "--plot" in args else None
        files = [a for a in args if a.endswith(".json")]
        print(page(files, plot))
    elif "--threads" in args:
        plot = args[args.index("--plot") + 1] if "--plot" in args else None
        print(thread_study(args[0], plot))
    else:
        print(table(args[0]))
