"""Out of core: the study's data written to Parquet (10 files) and fitted from disk by
MixedLM (and AdditiveMixed's Gaussian binned model)
(skmixed.sources.from_parquet, batches of 1,000,000 rows, read once) vs the in-memory fit
of the same data, and the peak memory of the out-of-core fit measured in a fresh process
(its maximum resident set size, everything included: Python, NumPy, Numba, Arrow). The
out-of-core fits are checked against the in-memory fit of the same rows: coefficients, θ (or
edf and SDs) and the REML criterion (tolerances in ``_same_fit``).
Quick grid: 2,000,000 rows × 2,000 groups; ``--bench-full``: 20,000,000 × 20,000 (issue 7:
peak ≤ 2 GB).

Several factors (issue 15): the crossed ``y ~ x + (1 | user) + (1 | item)`` of
:func:`skmixed.datasets.make_crossed`, 1,000,000 rows × 20,000 users × 5,000 items in 10
Parquet files, fitted from disk (per-level sums and the sparse user × item table summed over
the blocks) and checked against the in-memory fit of the same rows."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="Parquet sources need the 'parquet' extra")

COLS = ["x", "b", "g"]
ADDITIVE = ["x", "b", "z", "g"]
CROSSED = ["user", "item", "x"]


@pytest.fixture(scope="module")
def parquet_data(request, tmp_path_factory):
    from skmixed.datasets import make_multilevel

    full = request.config.getoption("--bench-full")
    n_obs, n_groups = (20_000_000, 20_000) if full else (2_000_000, 2_000)
    df = make_multilevel(n_obs, n_groups, random_state=7)[ADDITIVE + ["y", "y_nl"]]
    df.attrs = {}
    folder = tmp_path_factory.mktemp("parquet")
    step = n_obs // 10
    for i in range(10):
        df.iloc[i * step:(i + 1) * step].to_parquet(folder / f"part-{i}.parquet", index=False)
    return folder, df, n_obs


def _same_fit(model, memory, rtol=1e-9):
    """The README's chunked figures: coefficients 1e-9 relative (the intercept, near 0 here,
    1e-9 σ), the criterion 1e-10 relative, θ 1e-10. Measured on these files (each holds its
    own groups, so most groups first appear in a later chunk; 2026-12-03, seeds 7-9):
    coefficients ≤ 1.2e-10, θ ≤ 3.9e-14, criterion ≤ 2.9e-15."""
    assert model.converged_
    np.testing.assert_allclose(model.coef_, memory.coef_, rtol=rtol)
    np.testing.assert_allclose(model.intercept_, memory.intercept_, rtol=0,
                               atol=rtol * memory.sigma_)
    np.testing.assert_allclose(model.reml_criterion_, memory.reml_criterion_, rtol=1e-10)
    np.testing.assert_allclose(model.theta_, memory.theta_, rtol=1e-10)


def _fit_in_memory(df):
    from skmixed import MixedLM

    return MixedLM(groups="g").fit(df[COLS], df["y"])


def _fit_from_disk(folder):
    from skmixed import MixedLM
    from skmixed.sources import from_parquet

    return MixedLM(groups="g").fit(from_parquet(folder, target="y", columns=COLS,
                                                progress=False))


def test_outofcore_parquet_fit(benchmark, machine_info, parquet_data):
    folder, df, n_obs = parquet_data
    model = benchmark.pedantic(_fit_from_disk, args=(folder,), rounds=3, warmup_rounds=1)
    machine_info(n_obs=n_obs, source="parquet")
    _same_fit(model, _fit_in_memory(df))


def test_inmemory_fit_same_data(benchmark, machine_info, parquet_data):
    _, df, n_obs = parquet_data
    model = benchmark.pedantic(_fit_in_memory, args=(df,), rounds=3, warmup_rounds=1)
    machine_info(n_obs=n_obs, source="memory")
    _same_fit(_fit_from_disk(parquet_data[0]), model)


def test_outofcore_peak_memory(benchmark, machine_info, parquet_data):
    folder, _, n_obs = parquet_data
    code = textwrap.dedent(f"""
        import json, resource
        from skmixed import MixedLM
        from skmixed.sources import from_parquet
        model = MixedLM(groups="g").fit(from_parquet({str(folder)!r}, target="y",
                                                     columns={COLS!r}, progress=False))
        print(json.dumps(dict(peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                              / 1024, coef=model.coef_.tolist())))
    """)
    out = benchmark.pedantic(lambda: subprocess.run([sys.executable, "-c", code], check=True,
                                                    capture_output=True, text=True).stdout,
                             rounds=1, warmup_rounds=0)
    peak = json.loads(out.strip().splitlines()[-1])["peak_mb"]
    machine_info(n_obs=n_obs, peak_mb=round(peak, 1))
    assert peak < 2048


def test_outofcore_additive_parquet(benchmark, machine_info, parquet_data):
    """AdditiveMixed ``y_nl ~ x + b + s(z) + s(g, bs = "re")`` from the same Parquet files
    (z's range from the files' statistics), against the in-memory binned fit."""
    from skmixed import AdditiveMixed
    from skmixed.sources import from_parquet

    folder, df, n_obs = parquet_data
    model = benchmark.pedantic(
        lambda: AdditiveMixed(smooths=["z"], groups="g").fit(
            from_parquet(folder, target="y_nl", columns=ADDITIVE, progress=False)),
        rounds=3, warmup_rounds=1)
    machine_info(n_obs=n_obs, source="parquet")
    memory = AdditiveMixed(smooths=["z"], groups="g", discrete=True).fit(df[ADDITIVE],
                                                                       df["y_nl"])
    np.testing.assert_allclose(model.coef_, memory.coef_, rtol=1e-8)
    np.testing.assert_allclose(model.smooths_["edf"], memory.smooths_["edf"], rtol=1e-6)
    np.testing.assert_allclose(model.variance_components_["sd"],
                               memory.variance_components_["sd"], rtol=1e-6)
    np.testing.assert_allclose(model.reml_criterion_, memory.reml_criterion_, rtol=1e-10)


@pytest.fixture(scope="module")
def small_parquet(tmp_path_factory):
    """60,000 rows × 300 groups in one Parquet file of 12 row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from skmixed.datasets import make_multilevel

    df = make_multilevel(60_000, 300, random_state=3)[COLS + ["y"]]
    df.attrs = {}
    path = tmp_path_factory.mktemp("small") / "part-0.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=5_000)
    return path


def test_outofcore_tiny_batches(benchmark, machine_info, small_parquet):
    """``batch_size=7`` on 60,000 rows (8,572 record batches of 7 rows; issue 13 took over
    120 s): the batches are read and passed on in blocks of at least 65,536 rows of a file,
    so the fit costs what the default batch size does and gives the same numbers."""
    from skmixed import MixedLM
    from skmixed.sources import from_parquet

    def fit(batch_size):
        return MixedLM(groups="g").fit(from_parquet(small_parquet, target="y", columns=COLS,
                                                    batch_size=batch_size, progress=False))

    model = benchmark.pedantic(fit, args=(7,), rounds=3, warmup_rounds=1)
    machine_info(n_obs=60_000, batch_size=7)
    reference = fit(1_000_000)
    assert model.coef_.tolist() == reference.coef_.tolist()
    assert model.theta_.tolist() == reference.theta_.tolist()


@pytest.fixture(scope="module")
def crossed_parquet(tmp_path_factory):
    from skmixed.datasets import make_crossed

    n_obs, n_users, n_items = 1_000_000, 20_000, 5_000
    df = make_crossed(n_obs, n_users, n_items, random_state=15)[CROSSED + ["y"]]
    df.attrs = {}
    folder = tmp_path_factory.mktemp("crossed")
    step = n_obs // 10
    for i in range(10):
        df.iloc[i * step:(i + 1) * step].to_parquet(folder / f"part-{i}.parquet", index=False)
    return folder, df, (n_obs, n_users, n_items)


def test_outofcore_crossed_parquet(benchmark, machine_info, crossed_parquet):
    """Several factors from disk: one pass over the 10 files to the users' and items' sums
    and their contingency table, then the in-memory fit's optimization — the same fit as
    in memory (criterion 1e-10, θ and coefficients 1e-8)."""
    from skmixed import MixedLM
    from skmixed.sources import from_parquet

    folder, df, (n_obs, n_users, n_items) = crossed_parquet
    model = benchmark.pedantic(
        lambda: MixedLM(groups=["user", "item"], n_jobs=2).fit(
            from_parquet(folder, target="y", columns=CROSSED, progress=False)),
        rounds=1, warmup_rounds=1)
    timings = model.optimization_.timings
    machine_info(n_obs=n_obs, n_users=n_users, n_items=n_items, source="parquet",
                 row_pass_s=round(timings["row_pass"], 2),
                 optimize_s=round(timings["optimize"], 2),
                 n_evals=model.optimization_.n_evals)
    memory = MixedLM(groups=["user", "item"], n_jobs=2).fit(df[CROSSED], df["y"])
    assert model.converged_
    assert model.reml_criterion_ == pytest.approx(memory.reml_criterion_, rel=1e-10)
    np.testing.assert_allclose(model.theta_, memory.theta_, rtol=1e-8)
    np.testing.assert_allclose(model.coef_, memory.coef_, rtol=1e-8)
