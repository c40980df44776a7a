"""LRP rules: how one layer passes the relevance of its output back to its input.

A linear layer computes ``z = W x + b`` (a ``dot_general`` or ``conv_general_dilated`` followed by
its bias add). A rule redistributes the output relevance ``R_out`` onto the inputs as (Montavon
et al. 2019, eq. 2)

    R_in_i = Σ_j  x'_i w'_ij / s(z'_j) · R_out_j ,

with modified inputs ``x'``, weights ``w'`` and outputs ``z'`` (each rule's own), and ``s`` the
stabilizer ``s(z) = z + ε·sign(z)`` (``sign(0) = +1``, Zennit's ``Stabilizer``). It is computed
with the "modified gradient" trick: ``R_in = x' ⊙ J_{x'}(z')ᵀ (R_out / s(z'))``, the transposed
Jacobian a ``jax.vjp`` of the modified layer, so every rule costs one or a few backward passes of
the layer and stays jittable and vmappable.

The rules and their modifications follow Zennit 0.5.1 (``zennit.rules``) exactly, biases included
(``x⁺ = max(x, 0)``, ``x⁻ = min(x, 0)``, likewise for ``W`` and ``b``):

* :class:`Epsilon` ``(ε=1e-6)``: ``z' = z``; LRP-0 for ``ε = 0`` (Bach et al. 2015).
* :class:`ZPlus`: ``z' = W⁺x⁺ + b⁺ + W⁻x⁻``; ``R_in = x⁺ ⊙ W⁺ᵀg + x⁻ ⊙ W⁻ᵀg``, ``g = R/s(z')``.
* :class:`Gamma` ``(γ=0.25)``: weights ``W + γW⁺`` (``W + γW⁻``) where ``z > 0`` (``z < 0``).
* :class:`AlphaBeta` ``(α=2, β=1)``: ``α·`` (positive contributions) ``− β·`` (negative ones),
  each normalised by its own sum; ``α − β = 1``.
* :class:`Flat`: every input and weight one, no bias (relevance spread evenly over the
  receptive field).
* :class:`WSquare`: input one, weights and bias squared.
* :class:`ZBox` ``(low, high)``: ``z' = W x − W⁺ l − W⁻ h`` (bias in each term as Zennit's), for
  inputs bounded by ``[low, high]``.
* :class:`Pass`: relevance passes through unchanged (element-wise activations).
* :class:`Norm`: ``R_in = x ⊙ J(x)ᵀ (R / s(f(x)))`` for a parameter-free linear map ``f``
  (average pooling, sums of branches): relevance in proportion to the inputs' contributions.

References:
  Bach et al., "On Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise
  Relevance Propagation", PLoS ONE 2015. Montavon et al., "Layer-wise relevance propagation: an
  overview", in Explainable AI, Springer LNCS 11700, 2019. Montavon et al., "Explaining nonlinear
  classification decisions with deep Taylor decomposition", Pattern Recognition 2017.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Apply = Callable[[jax.Array, jax.Array, Any], jax.Array]  # (x, w, b or None) -> z


def stabilize(z: jax.Array, eps: float) -> jax.Array:
    """``z + ε·sign(z)`` with ``sign(0) = +1`` (Zennit's ``Stabilizer``)."""
    return z + ((z == 0).astype(z.dtype) + jnp.sign(z)) * eps


def _pos(a):
    return None if a is None else jnp.maximum(a, 0)


def _neg(a):
    return None if a is None else jnp.minimum(a, 0)


def _fwd(apply: Apply, x, w, b):
    """``(z', backward)`` of the layer with modified ``x, w, b``; ``backward(g) = J_xᵀ g``."""
    z, vjp = jax.vjp(lambda v: apply(v, w, b), x)
    return z, lambda g: vjp(g)[0]


class _Term(NamedTuple):
    """One modified copy of the layer, ``z' = apply(x', w', b')``, giving ``x' ⊙ J_{x'}ᵀ g``;
    ``minus``: subtracted (from ``z'`` and from the relevance) rather than added. A term whose
    ``x`` is ``None`` (``x⁻`` of an input known to be ``>= 0``) is skipped."""

    x: Any
    w: Any
    b: Any
    minus: bool = False


class _Group(NamedTuple):
    """Terms sharing one normaliser ``g = gate ⊙ R / s(Σ ±z'_k)``; their relevance
    ``Σ ±x'_k ⊙ J_kᵀ g`` is scaled by ``coef`` (``None``: added to the total term by term)."""

    terms: list[_Term]
    coef: float | None = None
    gate: Any = None


def _pair(xp, xn, w_pos, w_neg, b) -> list[_Term]:
    """The two terms ``x⁺ → (w_pos, b)`` and ``x⁻ → (w_neg, no bias)`` of a sign-split rule."""
    return [_Term(xp, w_pos, b), _Term(xn, w_neg, None)]


def _propagate(apply: Apply, r: jax.Array, eps: float, groups: list[_Group]) -> jax.Array:
    """``Σ_groups coef · Σ_terms ±x' ⊙ J_{x'}(z')ᵀ (gate ⊙ r / s(Σ ±z'))`` (module docstring)."""
    out = None
    for group in groups:
        terms = [t for t in group.terms if t.x is not None]
        fwd = [_fwd(apply, t.x, t.w, t.b) for t in terms]
        z = fwd[0][0]
        for t, (zk, _) in zip(terms[1:], fwd[1:], strict=True):
            z = z - zk if t.minus else z + zk
        g = r if group.gate is None else group.gate.astype(r.dtype) * r
        g = g / stabilize(z, eps)
        part = out if group.coef is None else None
        for t, (_, back) in zip(terms, fwd, strict=True):
            rel = t.x * back(g)
            if part is None:
                part = -rel if t.minus else rel
            else:
                part = part - rel if t.minus else part + rel
        if group.coef is None:
            out = part
        else:
            out = group.coef * part if out is None else out + group.coef * part
    return out


class Rule:
    """Base class of the LRP rules (see the module docstring)."""

    name = "rule"

    def linear(
        self,
        apply: Apply,
        x: jax.Array,
        w: jax.Array,
        b: Any,
        r: jax.Array,
        *,
        nonneg: bool = False,
    ) -> jax.Array:
        """Relevance at ``x`` of a linear layer ``apply(x, w, b)`` with output relevance ``r``.

        ``nonneg``: ``x`` is known to be ``>= 0`` (a ReLU's output), so the terms in
        ``x⁻ = 0`` are skipped (same result, fewer passes).
        """
        groups = self._groups(apply, x, w, b, None if nonneg else _neg(x))
        return _propagate(apply, r, self._stabilizer(), groups)

    def _groups(self, apply: Apply, x: jax.Array, w: jax.Array, b: Any, xn: Any) -> list[_Group]:
        """The rule's modified copies of the layer; ``xn``: ``x⁻``, ``None`` where ``x >= 0``."""
        raise ValueError(f"the LRP rule {self.name!r} does not apply to a linear layer")

    def _stabilizer(self) -> float:
        return self.stabilizer  # type: ignore[attr-defined]


@dataclasses.dataclass(frozen=True)
class Epsilon(Rule):
    """LRP-ε: ``R_in = x ⊙ Wᵀ(R / s_ε(z))`` (LRP-0 for ``epsilon=0``; Bach et al. 2015)."""

    epsilon: float = 1e-6
    name = "epsilon"

    def _groups(self, apply, x, w, b, xn):
        return [_Group([_Term(x, w, b)])]

    def _stabilizer(self) -> float:
        return self.epsilon


@dataclasses.dataclass(frozen=True)
class ZPlus(Rule):
    """LRP-z⁺ (α1β0 with negative inputs allowed, as Zennit's ``ZPlus``)."""

    stabilizer: float = 1e-6
    name = "zplus"

    def _groups(self, apply, x, w, b, xn):
        return [_Group(_pair(_pos(x), xn, _pos(w), _neg(w), _pos(b)))]


@dataclasses.dataclass(frozen=True)
class Gamma(Rule):
    """LRP-γ, the generalised form of Zennit's ``Gamma`` (Montavon et al. 2019; Andéol et al.)."""

    gamma: float = 0.25
    stabilizer: float = 1e-6
    name = "gamma"

    def _groups(self, apply, x, w, b, xn):
        def mod(a, part):
            return None if a is None else a + self.gamma * part(a)

        xp, z = _pos(x), apply(x, w, b)
        return [
            _Group(_pair(xp, xn, mod(w, _pos), mod(w, _neg), mod(b, _pos)), gate=z > 0),
            _Group(_pair(xp, xn, mod(w, _neg), mod(w, _pos), mod(b, _neg)), gate=z < 0),
        ]


@dataclasses.dataclass(frozen=True)
class AlphaBeta(Rule):
    """LRP-αβ: ``α`` × positive contributions − ``β`` × negative ones; ``α − β = 1``."""

    alpha: float = 2.0
    beta: float = 1.0
    stabilizer: float = 1e-6
    name = "alpha_beta"

    def __post_init__(self):
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got {self.alpha}, {self.beta}")
        if abs(self.alpha - self.beta - 1.0) > 1e-12:
            raise ValueError(f"alpha - beta must equal 1, got {self.alpha} - {self.beta}")

    def _groups(self, apply, x, w, b, xn):
        xp = _pos(x)
        return [
            _Group(_pair(xp, xn, _pos(w), _neg(w), _pos(b)), coef=self.alpha),
            _Group(_pair(xp, xn, _neg(w), _pos(w), _neg(b)), coef=-self.beta),
        ]


@dataclasses.dataclass(frozen=True)
class Flat(Rule):
    """LRP-flat: inputs and weights one, no bias (relevance spread evenly over the receptive
    field)."""

    stabilizer: float = 1e-6
    name = "flat"

    def _groups(self, apply, x, w, b, xn):
        return [_Group([_Term(jnp.ones_like(x), jnp.ones_like(w), None)])]


@dataclasses.dataclass(frozen=True)
class WSquare(Rule):
    """LRP-w²: input one, weights (and bias) squared (Montavon et al. 2017)."""

    stabilizer: float = 1e-6
    name = "w_square"

    def _groups(self, apply, x, w, b, xn):
        return [_Group([_Term(jnp.ones_like(x), w * w, None if b is None else b * b)])]


@dataclasses.dataclass(frozen=True, eq=False)
class ZBox(Rule):
    """LRP-z^B for inputs bounded by ``[low, high]`` (scalars or arrays broadcastable to one
    example), as Zennit's ``ZBox``."""

    low: Any = None
    high: Any = None
    stabilizer: float = 1e-6
    name = "zbox"

    def __post_init__(self):
        if self.low is None or self.high is None:
            raise ValueError("the z-box rule needs the input bounds `low` and `high`")

    def _groups(self, apply, x, w, b, xn):
        lo = jnp.broadcast_to(jnp.asarray(self.low, x.dtype), x.shape)
        hi = jnp.broadcast_to(jnp.asarray(self.high, x.dtype), x.shape)
        low, high = _Term(lo, _pos(w), _pos(b), minus=True), _Term(hi, _neg(w), _neg(b), minus=True)
        return [_Group([_Term(x, w, b), low, high])]


@dataclasses.dataclass(frozen=True)
class Pass(Rule):
    """Pass-through: the relevance of an element-wise operation's output goes to its input."""

    name = "pass"


@dataclasses.dataclass(frozen=True)
class Norm(Rule):
    """The norm rule for a parameter-free linear map ``f`` (average pooling, sums): relevance in
    proportion to each input's contribution, ``R_in = x ⊙ J(x)ᵀ (R / s(f(x)))``."""

    stabilizer: float = 1e-6
    name = "norm"

    _groups = Epsilon._groups  # LRP-ε with ε = stabilizer


RULES: dict[str, type[Rule]] = {
    "epsilon": Epsilon,
    "zplus": ZPlus,
    "gamma": Gamma,
    "alpha_beta": AlphaBeta,
    "flat": Flat,
    "w_square": WSquare,
    "zbox": ZBox,
    "pass": Pass,
    "norm": Norm,
}


def as_rule(rule: Any, what: str = "rule") -> Rule:
    """A :class:`Rule` from a rule or a rule's name (with default settings)."""
    if isinstance(rule, Rule):
        return rule
    if isinstance(rule, str) and rule in RULES:
        return RULES[rule]()
    raise ValueError(f"`{what}` names an unknown LRP rule {rule!r}; known rules: {sorted(RULES)}")
