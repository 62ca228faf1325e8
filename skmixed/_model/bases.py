"""The smooth bases an additive model can use, by mgcv's ``bs`` name, and one smooth term
of a model (`SmoothTerm`: its column, basis dimension, basis and, for a cyclic basis, the
ends of its cycle).

Every basis class has the interface of `skmixed._model.smooth.SmoothBasis`: ``cls(k)``
(``cls(k, ends=…)`` when ``cls.cyclic``), ``fit(x, weights)``, ``basis``, ``design``,
``constrained_penalty``, ``mixed_parts`` and ``domain``; a new basis is one more entry of
`BASES`.
"""

from dataclasses import dataclass

from .cubic_splines import CubicRegressionSpline, CyclicCubicSpline
from .factor_smooth import FactorSmooth
from .smooth import PSpline, drop_constraint
from .tensor import TensorSmooth
from .thin_plate import ThinPlateSmooth

__all__ = ["BASES", "TENSORS", "SmoothTerm", "make_basis"]

#: mgcv's ``bs`` name -> basis class
BASES = {"ps": PSpline, "cr": CubicRegressionSpline, "cc": CyclicCubicSpline,
         "tp": ThinPlateSmooth}

#: mgcv's tensor-product smooths: ``te`` (a full product, centred) and ``ti`` (the
#: interaction alone: margins centred)
TENSORS = ("te", "ti")


def make_basis(bs, k, ends=None, margins=None):
    """An unfitted basis ``bs`` of dimension k; ``ends`` (a, b) for a cyclic one; for a
    tensor product (bs "te" or "ti") ``margins`` its margins' bases, k and ``ends`` one per
    margin; for a factor-smooth interaction (bs "fs") ``margins`` holds its base's."""
    if bs == "fs":  # a factor-smooth interaction on its base (margins: (base,))
        return FactorSmooth(make_basis(margins[0], k, ends))
    if bs in TENSORS:  # ends: None, or one per margin (a cyclic margin's, or None)
        ends = (None,) * len(margins) if ends is None else ends
        return TensorSmooth([make_basis(b, kj, e) for b, kj, e in zip(margins, k, ends)],
                            interaction=bs == "ti")
    if bs not in BASES:
        raise ValueError(f"unknown smooth basis bs={bs!r}; the bases are {sorted(BASES)}.")
    cls = BASES[bs]
    if ends is None:
        return cls(k)
    if not getattr(cls, "cyclic", False):
        raise ValueError(f"the ends of a cycle are given for cyclic smooths (bs='cc') only; "
                         f"this smooth has bs={bs!r}.")
    return cls(k, ends=ends)


@dataclass(frozen=True)
class SmoothTerm:
    """One smooth ``s(label, bs = bs, k = k, by = by)`` of a model (``label``: its column,
    named in errors); ``ends``: the ends of a cyclic smooth's cycle, or None; ``by``: the
    name of mgcv's ``by`` variable, or None, and ``level``: for a factor ``by``, the level
    this copy of the smooth belongs to (None: a numeric ``by``, which multiplies the
    smooth). A tensor product (``bs`` "te" or "ti") has ``margins``, its margins' bases,
    and ``k``, a tuple: one per margin. A factor-smooth interaction (``bs`` "fs", mgcv's
    ``s(x, f, bs = "fs")``) has ``label`` (x, f), ``margins`` (its base's bs) and ``by``
    the factor's name."""

    label: object
    k: int = 10
    bs: str = "ps"
    ends: tuple = None
    by: str = None
    level: object = None
    margins: tuple = None

    def __post_init__(self):
        self.fit(None)  # the values checked now, before any data are read

    def fit(self, x, weights=None, centred=True, **options):
        """Its basis fitted to the covariate's values ``x`` (weighted by ``weights``; x None:
        unfitted), sum-to-zero constrained unless not ``centred``
        (`skmixed._model.smooth.drop_constraint`); ``options`` go to the basis's ``fit``
        (a thin plate's ``centre_points``); a bad parameter or covariate is a ValueError
        that names the column."""
        try:
            basis = make_basis(self.bs, self.k, self.ends, self.margins)
            if x is None:
                return basis
            basis = basis.fit(x, weights=weights, **options)
            return basis if centred else drop_constraint(basis)
        except ValueError as exc:
            raise ValueError(f"smooth of {self.label!r}: {exc}") from None
