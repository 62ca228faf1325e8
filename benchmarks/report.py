"""Turn a pytest-benchmark JSON file into a Markdown table of medians.

    python -m pytest benchmarks --benchmark-json=bench.json
    python benchmarks/report.py bench.json > table.md
"""

import json
import sys


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
                                   "median_2_threads_ms", "n_evals", "skmixed_seconds"))
        s = b["stats"]
        lines.append(f"| `{b['name']}` | {s['median'] * 1e3:.2f} | {s['min'] * 1e3:.2f} | "
                     f"{s['rounds']} | {notes} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1]))
