"""AdditiveMixed out of core (Gaussian, binned): one pass over chunks into basis-free bin
tables equals the in-memory ``discrete=True`` fit to round-off (see ``_same_fit``), from
DataFrame chunks (ranges given) and from Parquet (ranges from the files' statistics); a
covariate with few distinct values is binned by value, and one whose values outgrow
``n_bins`` mid-stream is moved onto the grid exactly."""

import numpy as np
import pytest

from conftest import require_package

from skmixed import AdditiveMixed
from skmixed.datasets import make_multilevel
from skmixed.sources import from_chunks, from_parquet

COLS = ["x", "b", "z", "g"]


@pytest.fixture(scope="module")
def data():
    df = make_multilevel(80_000, 200, slope_sd=0.3, random_state=5)
    df.attrs = {}
    return df.sample(frac=1.0, random_state=2).reset_index(drop=True)


def _chunks(df, size):
    return [df.iloc[i:i + size] for i in range(0, len(df), size)]


def _same_fit(a, b, rtol=1e-8):
    """Coefficients, modes and the REML criterion to 1e-8; edf and SDs to 1e-6: along the
    smoothing parameter of a nearly linear smooth (edf ~1.7) the criterion is so flat that
    sums in another order (1e-15) move its optimum by ~1e-7 (the criterion by 1e-14)."""
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=rtol)
    np.testing.assert_allclose(a.smooths_["edf"], b.smooths_["edf"], rtol=1e-6)
    np.testing.assert_allclose(a.variance_components_["sd"], b.variance_components_["sd"],
                               rtol=1e-6)
    np.testing.assert_allclose(a.reml_criterion_, b.reml_criterion_, rtol=1e-12)
    np.testing.assert_allclose(a.random_effects_["mode"], b.random_effects_["mode"],
                               rtol=rtol, atol=1e-8)


@pytest.mark.parametrize("slopes", [(), ("x",)])
def test_chunks_equal_the_binned_in_memory_fit(data, slopes):
    params = dict(smooths=["z"], groups="g", random_slopes=list(slopes), discrete=True)
    memory = AdditiveMixed(**params).fit(data[COLS], data["y_nl"])
    chunked = AdditiveMixed(**params).fit(from_chunks(
        _chunks(data[COLS + ["y_nl"]], 9_000), target="y_nl",
        ranges={"z": (data["z"].min(), data["z"].max())}, progress=False))
    _same_fit(chunked, memory)
    # to 1e-8 of y's spread: y is fitted minus a constant near it (the first chunk's mean
    # here, a sample's mean in memory), which moves the sums' rounding
    np.testing.assert_allclose(chunked.predict(data[COLS].iloc[:50]),
                               memory.predict(data[COLS].iloc[:50]), rtol=1e-8,
                               atol=1e-8 * data["y_nl"].std())


def test_parquet_ranges_from_statistics(data, tmp_path):
    require_package("pyarrow", "parquet")
    for i, chunk in enumerate(_chunks(data[COLS + ["y_nl"]], 20_000)):
        chunk.to_parquet(tmp_path / f"part-{i}.parquet", index=False)
    memory = AdditiveMixed(smooths=["z"], groups="g", discrete=True).fit(data[COLS],
                                                                       data["y_nl"])
    source = from_parquet(tmp_path, target="y_nl", columns=COLS, progress=False)
    assert source.ranges["z"] == (data["z"].min(), data["z"].max())
    _same_fit(AdditiveMixed(smooths=["z"], groups="g").fit(source), memory)


def test_an_empty_file_and_files_without_statistics(data, tmp_path):
    """A 0-row file holds no statistics and is skipped for the ranges (issue 13 review: it
    made the fit ask for ranges= that from_parquet did not take); files written without
    statistics give an error naming the file and the remedy, and fit with ranges=."""
    pq = require_package("pyarrow.parquet", "parquet")
    pa = require_package("pyarrow", "parquet")
    memory = AdditiveMixed(smooths=["z"], groups="g", discrete=True).fit(data[COLS],
                                                                       data["y_nl"])
    chunks = _chunks(data[COLS + ["y_nl"]], 40_000)
    with_empty = tmp_path / "with_empty"
    with_empty.mkdir()
    chunks[0].iloc[:0].to_parquet(with_empty / "part-0.parquet", index=False)
    for i, chunk in enumerate(chunks, start=1):
        chunk.to_parquet(with_empty / f"part-{i}.parquet", index=False)
    source = from_parquet(with_empty, target="y_nl", columns=COLS, progress=False)
    assert source.ranges["z"] == (data["z"].min(), data["z"].max())
    _same_fit(AdditiveMixed(smooths=["z"], groups="g").fit(source), memory)

    bare = tmp_path / "bare"
    bare.mkdir()
    for i, chunk in enumerate(chunks):
        pq.write_table(pa.Table.from_pandas(chunk, preserve_index=False),
                       bare / f"part-{i}.parquet", write_statistics=i == 0)
    model = AdditiveMixed(smooths=["z"], groups="g")
    with pytest.raises(ValueError, match=r"the Parquet file '[^']*part-1\.parquet' has no "
                       r"min/max statistics for 'z' .*from_parquet\(\.\.\., ranges="
                       r"\{'z': \(min, max\)\}\)"):
        model.fit(from_parquet(bare, target="y_nl", columns=COLS, progress=False))
    assert not hasattr(model, "coef_")
    z_range = (data["z"].min(), data["z"].max())
    source = from_parquet(bare, target="y_nl", columns=COLS, ranges={"z": z_range},
                          progress=False)
    _same_fit(AdditiveMixed(smooths=["z"], groups="g").fit(source), memory)
    with pytest.raises(ValueError, match=r"ranges\['z'\] must be finite with min <= max"):
        from_parquet(bare, target="y_nl", columns=COLS, ranges={"z": (1.0, 0.0)})


def test_values_then_grid(data):
    """z2 has 80 distinct values in the first chunks and continuous values later: its bins
    are its values until they outgrow n_bins = 100, then the grid, as in memory."""
    df = data[COLS + ["y_nl"]].copy()
    df["z2"] = np.where(np.arange(len(df)) < 40_000, np.round(df["z"] * 79) / 79, df["z"])
    cols = COLS + ["z2"]
    params = dict(smooths=["z", "z2"], groups="g", n_bins=100, discrete=True)
    memory = AdditiveMixed(**params).fit(df[cols], df["y_nl"])
    ranges = {c: (df[c].min(), df[c].max()) for c in ("z", "z2")}
    chunked = AdditiveMixed(**params).fit(from_chunks(_chunks(df, 10_000), target="y_nl",
                                                      ranges=ranges, progress=False))
    _same_fit(chunked, memory)
    # few distinct values need no range
    df["z3"] = np.round(df["z"] * 49) / 49
    cols = ["x", "b", "z3", "g"]
    memory = AdditiveMixed(smooths=["z3"], groups="g", discrete=True).fit(df[cols],
                                                                        df["y_nl"])
    chunked = AdditiveMixed(smooths=["z3"], groups="g").fit(from_chunks(
        _chunks(df[cols + ["y_nl"]], 10_000), target="y_nl", progress=False))
    _same_fit(chunked, memory)


@pytest.mark.parametrize("params, ranges, match", [
    (dict(smooths=["z"], groups="g"), None, r"chunks 0-\d+: the smooth of 'z' has more than"),
    (dict(smooths=["z"], groups="g"), {"z": (0.2, 0.8)}, r"chunks 0-\d+: values of 'z' outside"),
    (dict(smooths=["z"], groups="g", family="binomial"), None, "family='gaussian'"),
    (dict(smooths=["z"], groups="g", discrete=False), None, "binned smooths"),
])
def test_bad_chunked_additive_input(data, params, ranges, match):
    model = AdditiveMixed(**params)
    with pytest.raises(ValueError, match=match):
        model.fit(from_chunks(_chunks(data[COLS + ["y_nl"]], 20_000), target="y_nl",
                              ranges=ranges, progress=False))
    assert not hasattr(model, "coef_")
