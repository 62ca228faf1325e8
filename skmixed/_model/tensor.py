"""Tensor-product smooths of two or three covariates: mgcv's ``te(x, z)`` and ``ti(x, z)``.

Each margin j is a smooth of one covariate (any basis of `skmixed._model.bases`) with basis
``B_j`` (n × k_j) and penalty ``S_j``. The tensor product's basis is the row-wise Kronecker
product ``B = B_1 ⊙ B_2 (⊙ B_3)`` (row i: ``B_1[i] ⊗ B_2[i]``) and it has one penalty per
margin, ``S̃_1 = S_1 ⊗ I``, ``S̃_2 = I ⊗ S_2`` (Wood 2006), each with its own smoothing
parameter: the smooth may be wiggly in x and nearly linear in z.

``te``: the margins are unconstrained and the product is constrained to sum to zero over
the data, as ``s()``. ``ti``: each margin is constrained first (its main effect removed) and
the product is not: it holds only the interaction, to add to ``s(x) + s(z)``.

The penalties' null space (where every S̃_k vanishes: the products of the margins' null
spaces, e.g. 1, x, z, xz for two cubic margins, less the constant for ``te``) is the
smooth's unpenalized part; its range space carries the penalty ``Σ_k λ_k P_k`` that
`skmixed._model.additive.DenseREML` estimates (one τ per margin).

The identity factors make the model depend on each margin's parametrization (unlike a
smooth of one covariate): as mgcv's default ``np = TRUE``, a margin whose coefficients are
not already function values at its knots ("ps", "tp"; "cr" and "cc" are) is
reparametrized so that they are: its coefficients become the margin's values at k evenly
spaced points over the covariate's range. mgcv also rescales the penalties, which changes
only the scale of the smoothing parameters (so they are not mgcv's ``sp``).
"""

import warnings

import numpy as np
from scipy import linalg

from .smooth import drop_constraint, smoothcon_scale

__all__ = ["TensorSmooth", "row_kronecker"]

#: margin bases whose coefficients are function values at their knots (mgcv's "noterp"):
#: not reparametrized
_FUNCTION_VALUES = ("cr", "cc")


def row_kronecker(parts):
    """The row-wise Kronecker product of n-row matrices (n × Π k_j): row i is
    ``parts[0][i] ⊗ parts[1][i] ⊗ …`` (the first margin's index varies slowest)."""
    out = parts[0]
    for B in parts[1:]:
        out = (out[:, :, None] * B[:, None, :]).reshape(out.shape[0], -1)
    return out


class TensorSmooth:
    """mgcv's ``te()`` (``interaction=False``) or ``ti()`` (True) of d = 2 or 3 covariates.

    Parameters
    ----------
    margins : sequence of unfitted margin bases
        One per covariate (`skmixed._model.bases.make_basis`), e.g. mgcv's default for
        ``te(x, z)``: two cubic regression splines of k = 5.
    interaction : bool, default=False
        ``ti``: each margin centred, the product not.

    Attributes (after `fit`)
    ------------------------
    margins_ : list
        The fitted margins.
    constraint_ : ndarray
        Z, orthonormal, of the product's coefficients summing to zero over the data
        (``te``; the identity for ``ti``).
    penalties_ : list of ndarray
        The margins' penalties over the product's coefficients (before Z), each rescaled
        to the size of the basis as mgcv's ``smoothCon`` does.
    """

    cyclic = False

    def __init__(self, margins, interaction=False):
        self.margins = list(margins)
        self.interaction = bool(interaction)
        if not 2 <= len(self.margins) <= 3:
            raise ValueError(f"a tensor-product smooth takes 2 or 3 margins, not "
                             f"{len(self.margins)}.")
        self.bs = "ti" if interaction else "te"

    def fit(self, x, weights=None, **_):
        """Margins, penalties and (te) the sum-to-zero constraint from the covariates ``x``
        (n × d, a row per observation or per distinct point, ``weights`` its rows'
        weights; points of weight 0 place no knots). A margin's bad covariate or k is a
        ValueError naming the margin."""
        x = np.asarray(x, dtype=float)
        d = len(self.margins)
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"a tensor product of {d} margins needs an n × {d} array of "
                             "covariates.")
        self.margins_ = []
        for j, margin in enumerate(self.margins):
            try:
                fitted = margin.fit(x[:, j], weights=weights)
            except ValueError as exc:
                raise ValueError(f"margin {j + 1} of the tensor product: {exc}") from None
            # te: the margins unconstrained (the product is constrained)
            self.margins_.append(fitted if self.interaction else drop_constraint(fitted))
        everywhere = weights is None or np.all(np.asarray(weights) > 0)
        used = x if everywhere else x[np.asarray(weights) > 0]
        self.reparam_ = [self._values_at_points(m, used[:, j])
                         for j, m in enumerate(self.margins_)]
        B = self.basis(used)
        widths = [m.constraint_.shape[1] for m in self.margins_]
        self.penalties_ = []
        for j, (m, XP) in enumerate(zip(self.margins_, self.reparam_)):
            parts = [np.eye(w) for w in widths]
            S = m.constrained_penalty()
            parts[j] = S if XP is None else XP.T @ S @ XP
            S = parts[0]
            for P in parts[1:]:
                S = np.kron(S, P)
            self.penalties_.append(S / smoothcon_scale(S, B))
        k = B.shape[1]
        if self.interaction:
            self.constraint_ = np.eye(k)
        else:
            full = B if everywhere else self.basis(x)
            sums = full.sum(axis=0) if weights is None else np.asarray(weights, float) @ full
            q, _ = linalg.qr(sums[:, None], mode="full")
            self.constraint_ = q[:, 1:]
        # the basis at the fitted points, for the one `design` call that follows a fit
        # (an additive fit's; kept until then only)
        self._fitted_basis = (x, B) if everywhere else None
        self.centred_ = not self.interaction
        self.domain_ = tuple((float(c.min()), float(c.max())) for c in used.T)
        return self

    @staticmethod
    def _values_at_points(margin, x):
        """mgcv's ``np = TRUE`` reparametrization of a margin (None for "cr" and "cc"):
        ``XP = P⁻¹`` with P the margin's basis at ``k`` evenly spaced points over the
        covariate's range, so that the coefficients are the margin's values there (by
        the SVD, as mgcv; not done, with mgcv's warning, when P is nearly singular)."""
        if margin.bs in _FUNCTION_VALUES:
            return None
        k = margin.constraint_.shape[1]
        P = margin.design(np.linspace(x.min(), x.max(), k))
        U, d, Vt = linalg.svd(P)
        if d[-1] / d[0] < np.finfo(float).eps ** 0.66:
            warnings.warn(f"the reparametrization of a bs = {margin.bs!r} tensor-product "
                          "margin is unstable and was not done (as mgcv).", UserWarning,
                          stacklevel=2)
            return None
        return Vt.T @ (U.T / d[:, None])

    def basis(self, x):
        """The product of the margins' (te: unconstrained; ti: centred) bases at x (n × d),
        each margin reparametrized (`_values_at_points`)."""
        x = np.asarray(x, dtype=float)
        return row_kronecker([m.design(x[:, j]) if XP is None else m.design(x[:, j]) @ XP
                              for j, (m, XP) in enumerate(zip(self.margins_,
                                                              self.reparam_))])

    def design(self, x):
        """The constrained basis ``basis(x) Z``."""
        fitted, self._fitted_basis = getattr(self, "_fitted_basis", None), None
        B = fitted[1] if fitted is not None and fitted[0] is x else self.basis(x)
        return B @ self.constraint_

    @property
    def domain(self):
        """One (lo, hi) per covariate (for plots)."""
        return self.domain_

    def null_dimension(self):
        """The dimension of the penalties' common null space over the constrained
        coefficients: the product of the margins' null-space dimensions, less the constant
        that te's constraint removes."""
        dims = [m.constraint_.shape[1] - np.linalg.matrix_rank(m.constrained_penalty())
                for m in self.margins_]
        n = int(np.prod(dims))
        return n - 1 if self.centred_ and n > 0 else n

    def mixed_parts(self):
        """``(F, R, d)`` as a basis's: F spans the penalties' common null space (the
        unpenalized part), R (orthonormal) the rest; d the eigenvalues of the summed,
        normalized penalties over R. The penalties over R are `range_penalties`."""
        Z = self.constraint_
        total = sum(Z.T @ S @ Z / np.linalg.norm(S) for S in self.penalties_)
        eigval, eigvec = linalg.eigh((total + total.T) / 2.0)
        n_null = self.null_dimension()
        d = eigval[n_null:]
        if not d[0] > 1e3 * np.finfo(float).eps * d[-1]:
            raise ValueError("the tensor product's penalties are numerically singular "
                             "beyond their null space: use smaller k.")
        self._range = eigvec[:, n_null:]
        return eigvec[:, :n_null], self._range, d

    def range_penalties(self):
        """The margins' penalties over the range-space coefficients ``b`` (``c̃ = R b``):
        ``R'Z'S̃_kZR``, symmetrized."""
        Z, R = self.constraint_, self._range
        out = []
        for S in self.penalties_:
            P = R.T @ (Z.T @ S @ Z) @ R
            out.append((P + P.T) / 2.0)
        return out
