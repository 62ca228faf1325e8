"""Data that arrive in chunks: fits that read each chunk once (out of core).

A Gaussian mixed model needs only additive per-group sums of its rows (DESIGN §1, §6), so
:class:`~skmixed.MixedLM` can fit from a Parquet dataset or any iterator of DataFrame chunks
without holding the rows: every chunk goes through the same Numba row pass as an
in-memory fit and its per-group sums are added to the running totals (a group may be
spread over any number of chunks). Because X and y come together in each chunk, a source
names its target (and optional weight) column::

    from skmixed import MixedLM
    from skmixed.sources import from_parquet

    model = MixedLM(groups="g").fit(from_parquet("data/", target="y"))

The estimates equal the in-memory fit's to round-off.
"""

from dataclasses import dataclass

import pandas as pd

__all__ = ["ChunkedData", "from_chunks", "from_parquet", "checked_chunks"]


@dataclass
class ChunkedData:
    """Rows in chunks, read once by a fit.

    Parameters
    ----------
    make_chunks : callable
        Returns an iterator of ``(label, DataFrame)``; the label names the chunk in error
        messages (e.g. ``"chunk 3"`` or ``"part-0.parquet, batch 2"``).
    target : str
        The response column.
    weight : str or None
        A column of frequency weights (sample_weight), or None.
    n_chunks : int or None
        The number of chunks if known (for the progress bar).
    progress : bool
        Show a progress bar (tqdm) over the chunks.
    ranges : dict or None
        ``{column: (min, max)}`` of numeric columns over all chunks, known before the
        first (AdditiveMixed's binned smooths need the range of a covariate with more than
        ``n_bins`` distinct values; Parquet sources read it from the files' statistics).
    """

    make_chunks: object
    target: str
    weight: str = None
    n_chunks: int = None
    progress: bool = True
    ranges: dict = None

    def chunks(self):
        return self.make_chunks()


def from_chunks(chunks, target, *, weight=None, ranges=None, progress=True):
    """A :class:`ChunkedData` over an iterable of DataFrames (consumed once; a list can be
    read again); ``ranges`` as :class:`ChunkedData`'s."""
    n_chunks = len(chunks) if hasattr(chunks, "__len__") else None

    def make():
        for i, frame in enumerate(chunks):
            yield f"chunk {i}", frame

    return ChunkedData(make, target, weight, n_chunks, progress, ranges)


def from_parquet(path, target, *, columns=None, weight=None, batch_size=1_000_000,
                 progress=True):
    """A :class:`ChunkedData` over a Parquet file or directory (``pyarrow.dataset``; the
    optional extra ``parquet``), read in record batches of at most ``batch_size`` rows.

    ``columns`` selects the columns to read (default: all); it must include the target,
    the weight and every column the estimator uses."""
    try:
        import pyarrow.dataset as ds
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise ImportError("Parquet sources need pyarrow: pip install "
                          "'skmixed[parquet]'") from exc
    dataset = ds.dataset(path, format="parquet")
    names = dataset.schema.names
    wanted = list(columns) if columns is not None else names
    missing = [c for c in wanted + [target] + ([weight] if weight else []) if c not in names]
    if missing:
        raise ValueError(f"the Parquet dataset {str(path)!r} has no column(s) {missing}; its "
                         f"columns are {names}.")
    if columns is not None:
        wanted = list(dict.fromkeys(wanted + [target] + ([weight] if weight else [])))
    fragments = list(dataset.get_fragments())
    ranges = _parquet_ranges(fragments, wanted)

    def make():
        for fragment in fragments:
            for i, batch in enumerate(fragment.to_batches(columns=wanted,
                                                          batch_size=batch_size)):
                frame = batch.to_pandas()
                yield f"{fragment.path}, batch {i}", frame

    return ChunkedData(make, target, weight, None, progress, ranges)


def _parquet_ranges(fragments, columns):
    """``{column: (min, max)}`` of the numeric columns from the row groups' statistics
    (columns without statistics in some row group are left out)."""
    import pyarrow.parquet as pq

    lo, hi, missing = {}, {}, set()
    for fragment in fragments:
        meta = pq.ParquetFile(fragment.path, filesystem=fragment.filesystem).metadata
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        for r in range(meta.num_row_groups):
            group = meta.row_group(r)
            for i, name in enumerate(names):
                if name not in columns:
                    continue
                stats = group.column(i).statistics
                if (stats is None or not stats.has_min_max
                        or not isinstance(stats.min, (int, float))):
                    missing.add(name)
                    continue
                lo[name] = min(lo.get(name, stats.min), stats.min)
                hi[name] = max(hi.get(name, stats.max), stats.max)
    return {c: (float(lo[c]), float(hi[c])) for c in lo if c not in missing}


def chunk_columns(frame, label, first):
    """Check a chunk against the first one (same columns, same kinds of dtype); returns
    the chunk's column → kind map."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{label} is a {type(frame).__name__}, not a pandas DataFrame.")
    kinds = {c: ("category" if isinstance(frame[c].dtype, pd.CategoricalDtype)
                 else frame[c].dtype.kind) for c in frame.columns}
    if first is None:
        return kinds
    missing = [c for c in first if c not in kinds]
    if missing:
        raise ValueError(f"{label} lacks the column(s) {missing} of the first chunk.")
    extra = [c for c in kinds if c not in first]
    if extra:
        raise ValueError(f"{label} has column(s) {extra} that the first chunk does not.")
    numeric = set("biuf")
    for c, kind in first.items():
        now = kinds[c]
        if now != kind and not (now in numeric and kind in numeric):
            raise ValueError(f"{label}: column {c!r} has dtype kind {now!r}; the first "
                             f"chunk's is {kind!r} (inconsistent column types across "
                             "chunks).")
    return kinds


def checked_chunks(source, desc):
    """The source's non-empty chunks, each checked against the first (columns, dtype kinds,
    target and weight present), under a tqdm progress bar: ``(label, frame, kinds)``."""
    from tqdm.auto import tqdm

    kinds = None
    for label, frame in tqdm(source.chunks(), total=source.n_chunks,
                             disable=not source.progress, desc=desc, unit="chunk"):
        kinds = chunk_columns(frame, label, kinds)
        for role, column in (("target", source.target), ("weight", source.weight)):
            if column is not None and column not in frame.columns:
                raise ValueError(f"{label} lacks the {role} column {column!r}.")
        if len(frame):
            yield label, frame, kinds
