"""The study CLI: runs end to end on small data, writes its report, rejects bad options."""

import json

import numpy as np
import pytest

from conftest import require_package

from skmixed import study


def test_study_runs_and_writes_report(tmp_path, capsys):
    out = tmp_path / "report"
    assert study.main(["--n-obs", "20000", "--n-groups", "100", "--threads", "1",
                       "--repeats", "1", "--seed", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Linear mixed model fit by REML" in printed
    assert "1 thread(s):" in printed
    result = json.loads((out / "results.json").read_text())
    assert result["data"] == {**result["data"], "n_obs": 20000, "n_groups": 100, "seed": 3}
    fixed = {row["term"]: row for row in result["lmm"]["fixed_effects"]}
    # the simulator's truth: beta_x = 0.5 (SE ~0.007 at 20,000 rows)
    assert abs(fixed["x"]["estimate"] - 0.5) < 6 * fixed["x"]["std_error"]
    assert result["lmm"]["converged"]
    glmm = {row["term"]: row for row in result["glmm"]["fixed_effects"]}
    assert abs(glmm["x"]["estimate"] - 0.5) < 6 * glmm["x"]["std_error"]
    assert result["glmm"]["converged"]
    assert "Generalized linear mixed model" in printed
    # the additive models: the study's bam(..., s(g, bs = "re")) and the smooth of z
    for key in ("gam", "amm"):
        fixed = {row["term"]: row for row in result[key]["fixed_effects"]}
        assert abs(fixed["x"]["estimate"] - 0.5) < 6 * fixed["x"]["std_error"]
        assert result[key]["converged"]
    assert result["amm"]["edf"][0]["edf"] > 2  # z's nonlinear effect on y_nl
    report = (out / "report.md").read_text()
    assert "| x | 0.5 |" in report and "| GLMM | 1 |" in report
    assert "| GAM binomial | 1 |" in report and "AMM y_nl" in printed
    assert not list(out.glob(".*.tmp"))


@pytest.mark.parametrize("argv, message", [
    (["--n-obs", "0"], "must be a positive integer"),
    (["--n-groups", "-5"], "must be a positive integer"),
    (["--n-obs", "10", "--n-groups", "20"], "cannot exceed"),
    (["--threads", "1,x"], "is not an integer"),
    (["--models", "lmm,nope"], "unknown model name"),
])
def test_study_rejects_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        study.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_study_accepts_scientific_sizes():
    args = study.build_parser().parse_args(["--n-obs", "2e6"])
    assert args.n_obs == 2_000_000


def test_study_models_threads_plots(tmp_path, capsys):
    """A subset of models, two thread counts (the Amdahl section), the plots in the
    report (matplotlib is in the test extras)."""
    require_package("matplotlib", "plot")
    out = tmp_path / "r"
    assert study.main(["--n-obs", "120000", "--n-groups", "100", "--threads", "1,2",
                       "--repeats", "1", "--models", "lmm,amm", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "speed-up x" in printed and "GLMM" not in printed
    result = json.loads((out / "results.json").read_text())
    assert result["models"] == ["lmm", "amm"] and "glmm" not in result
    st = result["lmm"]["thread_study"]
    assert st["threads"] == 2
    assert st["serial_fraction"] is None or 0.0 <= st["serial_fraction"] <= 1.0
    report = (out / "report.md").read_text()
    assert "## Threads (Amdahl)" in report
    # wall time vs rows: subsets of 1/8 to 1/2 (1/16 = 7,500 rows is below 10,000: said)
    assert [p["n_obs"] for p in result["scaling"]["lmm"]] == [15_000, 30_000, 60_000,
                                                               120_000]
    assert "subsets of 7,500 rows skipped" in printed
    assert "## Wall time vs rows" in report
    for name in ("threads.png", "rows.png", "fixed_effects.png", "smooth_z.png"):
        assert (out / name).stat().st_size > 1000 and f"]({name})" in report
    sz = result["amm"]["smooth_z"]
    assert np.max(np.abs(np.subtract(sz["estimate"], sz["truth"]))) < 0.3
    assert not list(out.glob(".*"))


def test_study_never_leaves_a_half_written_report(tmp_path, monkeypatch):
    out = tmp_path / "r"

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(study, "format_report", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        study.main(["--n-obs", "5000", "--n-groups", "50", "--threads", "1", "--repeats",
                    "1", "--models", "lmm", "--out", str(out)])
    assert list(out.iterdir()) == []


def test_thread_study_amdahl():
    timings = {1: {"median_seconds": 1.0}, 4: {"median_seconds": 0.4}}
    st = study.thread_study(timings)
    # S = 2.5 on 4 threads: s = (4/2.5 - 1)/3 = 0.2, limit 1/s = 5
    assert st["speedup"] == pytest.approx(2.5)
    assert st["serial_fraction"] == pytest.approx(0.2)
    assert st["max_speedup"] == pytest.approx(5.0)
    assert study.thread_study({1: {"median_seconds": 1.0}}) is None


def test_no_serial_fraction_from_a_slowdown():
    """A second thread that gains nothing (speed-up ≤ 1) implies no Amdahl serial fraction:
    the study says so instead of printing s = 1."""
    st = study.thread_study({1: {"median_seconds": 1.0}, 2: {"median_seconds": 1.05}})
    assert st["speedup"] == pytest.approx(1 / 1.05)
    assert st["serial_fraction"] is None and st["max_speedup"] is None
    line = study.describe_thread_study(st)
    assert "no gain from threads measured" in line and "serial fraction 1" not in line
    result = {"data": {"n_obs": 10, "n_groups": 2, "seed": 0}, "truth": {}, "models": ["lmm"],
              "machine": {}, "lmm": {"model": "y ~ x", "fixed_effects": [
                  {"term": "(Intercept)", "estimate": 1.0, "std_error": 0.1}],
                  "variance_components": [], "timings": {1: {"median_seconds": 1.0}},
                  "thread_study": st}}
    assert "none (no gain measured)" in study.format_report(result)
