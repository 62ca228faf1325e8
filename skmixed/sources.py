"""Data that arrive in chunks: fits that read each chunk once (out of core).

A Gaussian mixed model needs only additive per-group sums of its rows (Bates et al. 2015 §3), so
[`MixedLM`][skmixed.MixedLM] can fit from a Parquet dataset or any iterator of DataFrame chunks
without holding the rows: every chunk goes through the same Numba row pass as an
in-memory fit and its per-group sums are added to the running totals (a group may be
spread over any number of chunks). Because X and y come together in each chunk, a source
names its target (and optional weight) column::

    from skmixed import MixedLM
    from skmixed.sources import from_parquet

    model = MixedLM(groups="g").fit(from_parquet("data/", target="y", columns=["x", "g"]))

The estimates equal the in-memory fit's to round-off.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .exceptions import SourceError

__all__ = ["ChunkedData", "SourceError", "from_chunks", "from_parquet", "checked_chunks",
           "refuse_chunked", "score_target", "MIN_BLOCK_ROWS"]

# The fewest rows of a Parquet file passed on as one block (see from_parquet's batch_size).
MIN_BLOCK_ROWS = 65_536


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
    range_notes : dict or None
        ``{column: text}``: why a column's range is not known (e.g. the Parquet file that
        has no statistics for it), for the error of a fit that needs it.
    """

    make_chunks: object
    target: str
    weight: str = None
    n_chunks: int = None
    progress: bool = True
    ranges: dict = None
    range_notes: dict = None

    def chunks(self):
        return self.make_chunks()


def from_chunks(chunks, target, *, weight=None, ranges=None, progress=True):
    """A [`ChunkedData`][skmixed.sources.ChunkedData] over an iterable of DataFrames (consumed
    once; a list can be read again); ``ranges`` as [`ChunkedData`][skmixed.sources.ChunkedData]'s.

    Consecutive chunks of fewer than ``MIN_BLOCK_ROWS`` rows with the same columns and dtypes are
    joined into blocks of at least that many rows (as
    [`from_parquet`][skmixed.sources.from_parquet] does): each block is one run of the row kernel,
    whose fixed cost would otherwise dominate (60,000 rows in 7-row chunks took 25 s). A block of
    several chunks is named ``"chunks i-j"`` in errors."""
    n_chunks = None  # the progress bar's total: known when no chunk is joined to another
    if isinstance(chunks, (list, tuple)) and all(
            not isinstance(c, pd.DataFrame) or len(c) >= MIN_BLOCK_ROWS for c in chunks):
        n_chunks = len(chunks)

    def make():
        return _coalesced(enumerate(chunks), MIN_BLOCK_ROWS)

    return ChunkedData(make, target, weight, n_chunks, progress,
                       _checked_ranges(ranges) if ranges is not None else None)


def _coalesced(numbered, min_rows):
    """``(label, frame)`` blocks of numbered chunks: consecutive small DataFrames with the
    same columns concatenated until a block has ``min_rows`` rows; anything else (a large
    chunk, other columns, a non-DataFrame) ends the block and passes on as it is. A block
    whose dtypes the concatenation changed (int and float, categoricals of different
    categories) passes on as its chunks instead, so nothing is converted and every chunk
    is checked and named on its own."""
    pending, n_rows, columns = [], 0, None

    def flush():
        first = pending[0][0]
        if len(pending) > 1:
            block = pd.concat([frame for _, frame in pending], ignore_index=True)
            if block.dtypes.equals(pending[0][1].dtypes):
                return [(f"chunks {first}-{pending[-1][0]}", block)]
        return [(f"chunk {i}", frame) for i, frame in pending]

    for i, frame in numbered:
        small = isinstance(frame, pd.DataFrame) and len(frame) < min_rows
        if pending and not (small and frame.columns.equals(columns)):
            yield from flush()
            pending, n_rows = [], 0
        if not small:
            yield f"chunk {i}", frame
            continue
        columns = frame.columns
        pending.append((i, frame))
        n_rows += len(frame)
        if n_rows >= min_rows:
            yield from flush()
            pending, n_rows = [], 0
    if pending:
        yield from flush()


def from_parquet(path, target, *, columns=None, weight=None, batch_size=1_000_000,
                 ranges=None, progress=True):
    """A [`ChunkedData`][skmixed.sources.ChunkedData] over a Parquet file or directory
    (``pyarrow``; the optional extra ``parquet``), every file read once in blocks of consecutive
    rows.

    Parameters
    ----------
    path : str or path-like
        A Parquet file, or a directory of them (files whose names start with ``.`` or ``_``
        are skipped, as ``pyarrow.dataset`` does).
    target : str
        The response column.
    columns : list of str
        The columns the estimator gets as X (required: a dataset often holds other
        responses, ids or derived columns that must not become predictors unnoticed); the
        target and weight columns are read besides.
    weight : str or None
        A column of frequency weights.
    batch_size : int
        The most rows of a file read into one block (the memory bound). Blocks hold at
        least ``MIN_BLOCK_ROWS`` = 65,536 rows (fewer only at a file's end), whatever
        ``batch_size`` says: each block is one run of the row kernel, whose fixed cost
        would otherwise dominate (``batch_size=7`` on 60,000 rows made 8,572 runs).
    ranges : dict or None
        ``{column: (min, max)}`` over all files, as [`ChunkedData`][skmixed.sources.ChunkedData]'s;
        given columns override the range read from the files' statistics (needed when files were
        written without statistics, e.g. ``write_statistics=False``).
    progress : bool
        Show a progress bar over the blocks.

    Raises
    ------
    SourceError
        No ``columns``; or a file that is not Parquet, is truncated or lacks one of the
        columns (from every file's footer, read before any row), or that fails while its
        rows are read — a data page whose CRC checksum does not match included (pyarrow
        verifies the checksums of files written with them: ``pyarrow.parquet.write_table(
        ..., write_page_checksum=True)``; pandas' default writer writes none). The message
        names the file."""
    pq = _pyarrow_parquet()
    if isinstance(columns, str):
        columns = [columns]
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    files = [(file, fs, _file_footer(pq, file, fs)) for file, fs in _parquet_files(path)]
    if not columns:
        names = files[0][2].schema.to_arrow_schema().names
        raise SourceError(
            f"from_parquet({str(path)!r}, target={target!r}) needs columns=[...]: the columns "
            f"X is made of (every other column would become a predictor). The dataset's "
            f"columns are {names}.")
    wanted = list(dict.fromkeys(list(columns) + [target] + ([weight] if weight else [])))
    for file, _, footer in files:
        present = footer.schema.to_arrow_schema().names
        missing = [c for c in wanted if c not in present]
        if missing:
            raise SourceError(f"the Parquet file {file!r} has no column(s) {missing}; its "
                              f"columns are {present}.")
    block = max(int(batch_size), MIN_BLOCK_ROWS)
    n_blocks = sum(-(-footer.num_rows // block) for _, _, footer in files)

    def make():
        for file, fs, _ in files:
            yield from _file_blocks(pq, file, fs, wanted, block)

    known, notes = _parquet_ranges([(file, footer) for file, _, footer in files], wanted)
    given = _checked_ranges(ranges)
    notes = {c: note for c, note in notes.items() if c not in given}
    return ChunkedData(make, target, weight, n_blocks, progress, {**known, **given}, notes)


def _checked_ranges(ranges):
    """``{column: (lo, hi)}`` as floats, lo <= hi, both finite (or a ValueError naming the
    column)."""
    checked = {}
    for column, value in (ranges or {}).items():
        try:
            lo, hi = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"ranges[{column!r}] must be a pair (min, max) of numbers; got "
                             f"{value!r}.") from None
        if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            raise ValueError(f"ranges[{column!r}] must be finite with min <= max; got "
                             f"{value!r}.")
        checked[column] = (lo, hi)
    return checked


def _pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise ImportError("Parquet sources need pyarrow: pip install "
                          "'skmixed[parquet]'") from exc
    return pq


def _parquet_files(path):
    """``[(file, filesystem)]`` of a Parquet file or directory, listed without reading
    them (``pyarrow.dataset``'s discovery with an empty schema)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    try:
        found = ds.dataset(path, format="parquet", schema=pa.schema([])).get_fragments()
        files = [(fragment.path, fragment.filesystem) for fragment in found]
    except FileNotFoundError:
        raise SourceError(f"no Parquet file or directory at {str(path)!r}.") from None
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"the Parquet dataset {str(path)!r} cannot be listed: {exc}") \
            from exc
    if not files:
        raise SourceError(f"the directory {str(path)!r} holds no Parquet files.")
    return files


def _file_footer(pq, file, filesystem):
    """A file's Parquet metadata (its footer: schema, row groups, statistics)."""
    import pyarrow as pa

    try:
        with pq.ParquetFile(file, filesystem=filesystem) as handle:
            return handle.metadata
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"the Parquet file {file!r} cannot be read (corrupt, truncated or "
                          f"not Parquet): {exc}") from exc


def _file_blocks(pq, file, filesystem, columns, block_rows):
    """``(label, DataFrame)`` blocks of ``block_rows`` consecutive rows of one file (the
    last one fewer), whatever the row groups and Arrow's batches; errors name the file
    and the rows."""
    import pyarrow as pa

    start, pending, n_pending = 0, [], 0
    try:
        with pq.ParquetFile(file, filesystem=filesystem,
                            page_checksum_verification=True) as handle:
            for batch in handle.iter_batches(batch_size=block_rows, columns=columns):
                pending.append(batch)
                n_pending += batch.num_rows
                while n_pending >= block_rows:
                    table = pa.Table.from_batches(pending)
                    rest = table.slice(block_rows)
                    pending, n_pending = rest.to_batches(), rest.num_rows
                    frame = table.slice(0, block_rows).to_pandas()
                    yield f"{file}, rows {start}:{start + block_rows}", frame
                    start += block_rows
            if n_pending:
                yield (f"{file}, rows {start}:{start + n_pending}",
                       pa.Table.from_batches(pending).to_pandas())
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"the Parquet file {file!r} failed while reading the rows from "
                          f"{start} on (corrupt or truncated?): {exc}") from exc


def _parquet_ranges(files, columns):
    """``{column: (min, max)}`` of the numeric columns from the row groups' statistics,
    and ``{column: note}`` for those left out: the first file with a (non-empty) row group
    without min/max statistics for the column. Empty row groups (a file of no rows) hold no
    values and are skipped."""
    lo, hi, notes = {}, {}, {}
    for file, meta in files:
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        for r in range(meta.num_row_groups):
            group = meta.row_group(r)
            if group.num_rows == 0:
                continue
            for i, name in enumerate(names):
                if name not in columns or name in notes:
                    continue
                stats = group.column(i).statistics
                if stats is None or not stats.has_min_max:
                    notes[name] = (f"the Parquet file {file!r} has no min/max statistics for "
                                   f"{name!r} (written with write_statistics=False?)")
                    continue
                if not isinstance(stats.min, (int, float)):
                    notes[name] = f"{name!r} is not numeric in the Parquet file {file!r}"
                    continue
                lo[name] = min(lo.get(name, stats.min), stats.min)
                hi[name] = max(hi.get(name, stats.max), stats.max)
    return {c: (float(lo[c]), float(hi[c])) for c in lo if c not in notes}, notes


# What reads a chunked source; everything else needs the rows in memory.
READS_CHUNKED = "MixedLM.fit and AdditiveMixed.fit (family='gaussian', binned smooths)"


def refuse_chunked(X, estimator_name):
    """A clear TypeError for a chunked source passed where rows in memory are needed
    (predict, score, ...): what does read one, and how to predict from one."""
    if isinstance(X, ChunkedData):
        raise TypeError(
            f"{estimator_name} got a chunked source (skmixed.sources.ChunkedData) where it "
            f"needs rows in memory: only {READS_CHUNKED} read a chunked source. To predict, "
            "pass each chunk's DataFrame in turn (source.chunks() yields (label, DataFrame) "
            "pairs; drop the target column).")


def score_target(X, y, estimator_name):
    """``y`` of ``score(X, y)``: a chunked X is refused as ``predict`` refuses it (with or
    without y: a source carries its target, but score needs the rows in memory), and a
    missing y is named."""
    refuse_chunked(X, estimator_name)
    if y is None:
        raise TypeError(f"{estimator_name}.score(X, y) needs y, the observed values of X's "
                        "rows.")
    return y


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
