"""skmixed._model.multilevel.PairRows: heavy rows of the pair table by dense BLAS (syrk,
symm), light ones by the pair kernels — the same Schur complement, F S on the pattern and
quadratic forms as the kernels on all rows; and the same LMM/GLMM fits."""

import numpy as np
import pytest
from scipy import sparse

from skmixed import MixedGLM, MixedLM
from skmixed._model import multilevel
from skmixed._model.multilevel import PairRows
from skmixed.datasets import make_crossed


def _table(seed=0, rows=40, cols=30):
    rng = np.random.default_rng(seed)
    nnz = rng.integers(0, cols, rows)
    nnz[:3] = [cols, cols - 1, 0]
    r = np.repeat(np.arange(rows), nnz)
    c = np.concatenate([rng.choice(cols, k, replace=False) for k in nnz])
    B = sparse.csr_matrix((rng.normal(size=r.size), (r, c)), shape=(rows, cols))
    B.sort_indices()
    return B


@pytest.fixture
def split(monkeypatch):
    monkeypatch.setattr(multilevel, "HEAVY_FROM_COLUMNS", 0)
    monkeypatch.setattr(multilevel, "HEAVY_ROW", 15)


def test_heavy_rows_equal_the_pair_kernels(split, monkeypatch):
    B = _table()
    heavy = PairRows(B)
    assert 0 < heavy.heavy_rows.size < B.shape[0]
    monkeypatch.setattr(multilevel, "HEAVY_ROW", 10**9)
    light = PairRows(B)
    assert light.all
    m = B.shape[1]
    rng = np.random.default_rng(1)
    lam = rng.uniform(0.5, 2.0, m)
    zz = sparse.tril(sparse.diags(rng.uniform(1, 5, m)), format="csr")
    outs = []
    for rows in (heavy, light):
        out = np.zeros((m, m), order="F")
        rows.schur_lower(lam, zz.indptr, zz.indices, zz.data, B.data, out, 1)
        outs.append(np.tril(out))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    A = rng.normal(size=(m, m))
    S = np.asfortranarray(np.tril(A @ A.T))
    fs = [np.empty(B.nnz), np.empty(B.nnz)]
    qf = [np.empty(B.shape[0]), np.empty(B.shape[0])]
    for rows, f, q in zip((heavy, light), fs, qf):
        rows.pattern_products(B.data, S, f)
        rows.quadratic_forms(B.data, S, q)
    np.testing.assert_allclose(fs[0], fs[1], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(qf[0], qf[1], rtol=1e-10, atol=1e-10)
    full = np.tril(S) + np.tril(S, -1).T
    np.testing.assert_allclose(qf[1], np.einsum("ij,jk,ik->i", B.toarray(), full, B.toarray()),
                               rtol=1e-10, atol=1e-10)


def test_fits_with_heavy_rows_are_the_same(monkeypatch):
    """The exact LMM and the binomial GLMM on 30,000 rows × 500 × 300 with and without the
    dense heavy rows (88 users of ≥ 40 items): criteria 1e-10, θ and SEs 1e-8."""
    df = make_crossed(30_000, 500, 300, random_state=3)
    X = df[["user", "item", "x"]]
    fits = []
    for heavy_row in (10**9, 40):
        monkeypatch.setattr(multilevel, "HEAVY_FROM_COLUMNS", 0)
        monkeypatch.setattr(multilevel, "HEAVY_ROW", heavy_row)
        fits.append((MixedLM(groups=["user", "item"], solver="exact").fit(X, df["y"]),
                     MixedGLM(groups=["user", "item"]).fit(X, df["y_bin"])))
    (lmm0, glmm0), (lmm1, glmm1) = fits
    assert lmm1.reml_criterion_ == pytest.approx(lmm0.reml_criterion_, rel=1e-12)
    np.testing.assert_allclose(lmm1.theta_, lmm0.theta_, rtol=1e-8)
    np.testing.assert_allclose(lmm1.random_effects_["cond_sd"],
                               lmm0.random_effects_["cond_sd"], rtol=1e-8)
    assert glmm1.deviance_ == pytest.approx(glmm0.deviance_, rel=1e-12)
    np.testing.assert_allclose(glmm1.theta_, glmm0.theta_, rtol=1e-8)
    np.testing.assert_allclose(glmm1.fixed_effects_["std_error"],
                               glmm0.fixed_effects_["std_error"], rtol=1e-8)
