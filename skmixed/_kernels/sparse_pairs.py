"""Products over the nonzeros of a sparse matrix's rows (CSR), for the Schur complement of
several grouping factors (skmixed._model.multilevel): with F the first factor's levels ×
the other factors' columns, ``F'F = Σ_i f_i f_i'`` and the quadratic forms
``f_i' S f_i`` touch only the pairs of nonzeros within each row (Σ_i nnz_i² of them) — a
weighted contingency table of the factors, as MixedModels.jl forms it.

None of them depends on the thread count: :func:`row_outer_sum` splits the rows into the
caller's number of chunks, each with its own output matrix (summed by the caller in chunk
order); :func:`row_quadratic_forms` writes one number per row; in
:func:`scaled_schur_lower` each output entry is accumulated by one thread, over the rows in
order.
"""

from numba import prange

from .._cache import cached_njit

__all__ = ["row_outer_sum", "row_quadratic_forms", "row_pattern_products",
           "scaled_schur_lower", "csr_dense_product"]


@cached_njit(parallel=True)
def row_outer_sum(indptr, indices, data, out):
    """``out[c] = Σ_{rows in chunk c} f_i f_i'`` on the lower triangle (column index of
    the first factor ≥ the second's; the caller mirrors it). ``out``: (n_chunks, m, m),
    zeroed by the caller; ``indices`` sorted within each row."""
    n_rows = indptr.shape[0] - 1
    n_chunks = out.shape[0]
    for c in prange(n_chunks):
        lo = c * n_rows // n_chunks
        hi = (c + 1) * n_rows // n_chunks
        acc = out[c]
        for i in range(lo, hi):
            for a in range(indptr[i], indptr[i + 1]):
                ja = indices[a]
                va = data[a]
                for b in range(indptr[i], a + 1):
                    acc[ja, indices[b]] += va * data[b]


@cached_njit(parallel=True)
def row_quadratic_forms(indptr, indices, data, S, out):
    """``out[i] = f_i' S f_i`` for every row i, S symmetric given by its lower triangle
    (``indices`` sorted within each row). S column-major (Fortran order, as LAPACK leaves
    it): the inner loops run down a column."""
    n_rows = indptr.shape[0] - 1
    for i in prange(n_rows):
        lo, hi = indptr[i], indptr[i + 1]
        total = 0.0
        for b in range(lo, hi):
            jb = indices[b]
            inner = 0.5 * S[jb, jb] * data[b]
            for a in range(b + 1, hi):
                inner += S[indices[a], jb] * data[a]
            total += data[b] * inner
        out[i] = 2.0 * total


@cached_njit(parallel=True)
def row_pattern_products(indptr, indices, data, S, out):
    """``out[a] = (f_i'S)_{indices[a]}`` for every nonzero a of every row i: the product
    ``F S`` on F's own pattern, S symmetric given by its lower triangle (column-major: each
    pair read once, down a column). Within a row ``Σ_a data[a] out[a] = f_i'S f_i``
    (:func:`row_quadratic_forms`)."""
    n_rows = indptr.shape[0] - 1
    for i in prange(n_rows):
        lo, hi = indptr[i], indptr[i + 1]
        for a in range(lo, hi):
            out[a] = 0.0
        for b in range(lo, hi):
            jb = indices[b]
            vb = data[b]
            out[b] += vb * S[jb, jb]
            for a in range(b + 1, hi):
                s_ab = S[indices[a], jb]
                out[a] += vb * s_ab
                out[b] += data[a] * s_ab


@cached_njit(parallel=True)
def scaled_schur_lower(lam, zz_indptr, zz_indices, zz_data, indptr, indices, data, out,
                       n_parts=1):
    """The lower triangle of ``diag(λ) ZZ diag(λ) + I − Σ_i f_i f_i'`` into ``out`` (the
    rest factors' Schur complement (:mod:`skmixed._model.multilevel`), formed in place, ready for an in-place
    Cholesky factorization; the upper triangle is left as it was). ``ZZ``: its lower
    triangle as CSR (``zz_*``; ZZ is sparse — diagonal counts and the rest factors'
    contingency tables — and is never held dense). ``out`` column-major (Fortran order, as
    LAPACK reads it): the loops run down its columns.

    ``n_parts`` threads each own the output rows ``≡ part (mod n_parts)``: every thread
    scans all nonzeros but writes only its own rows (no races, no per-thread copies)."""
    m = lam.shape[0]
    n_rows = indptr.shape[0] - 1
    for part in prange(n_parts):
        for j in range(m):
            for i in range(j + (part - j) % n_parts, m, n_parts):  # own rows i ≥ j
                out[i, j] = 0.0
        for i in range(part, m, n_parts):
            li = lam[i]
            for a in range(zz_indptr[i], zz_indptr[i + 1]):
                j = zz_indices[a]
                if j <= i:
                    out[i, j] += li * zz_data[a] * lam[j]
            out[i, i] += 1.0
        for r in range(n_rows):
            lo, hi = indptr[r], indptr[r + 1]
            for b in range(lo, hi):
                jb = indices[b]
                vb = data[b]
                for a in range(b, hi):
                    ja = indices[a]
                    if n_parts == 1 or ja % n_parts == part:
                        out[ja, jb] -= data[a] * vb


@cached_njit(parallel=True)
def csr_dense_product(indptr, indices, data, V, out):
    """``out = A V`` for A in CSR (``indptr``, ``indices``, ``data``) and V dense (m × R,
    C order): each output row by one thread, over its nonzeros in order (the result does
    not depend on the thread count). The iterative crossed fit's products with the
    level-pair tables, for its block of right-hand sides at once."""
    n_rows = indptr.shape[0] - 1
    R = V.shape[1]
    for i in prange(n_rows):
        row = out[i]
        for c in range(R):
            row[c] = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            a = data[k]
            src = V[indices[k]]
            for c in range(R):
                row[c] += a * src[c]
