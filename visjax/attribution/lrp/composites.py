"""LRP composites: which rule each layer of a network uses.

A :class:`Composite` maps layers to rules, first by layer path (Zennit's ``NameMapComposite``),
then the first linear layer of the program (``first``, Zennit's ``SpecialFirstLayerMapComposite``),
then by layer kind (Zennit's ``LayerMapComposite``). The kinds are ``"conv"``
(``conv_general_dilated``) and ``"dense"`` (``dot_general``). Parameter-free parts always use
Zennit's ``layer_map_base``: :class:`~visjax.attribution.lrp.rules.Pass` for element-wise
activations and element-wise affine operations with constant operands, and
:class:`~visjax.attribution.lrp.rules.Norm` for average pooling (a module or a functional
``mean``) and for sums of two branches (residual connections, Zennit's ``ResNetCanonizer`` with its
``Sum`` module). Max-pooling is winner-takes-all (``maxpool="winner"``, the plain gradient as in
Zennit) or proportional (``maxpool="proportional"``: the norm rule).

The presets, with Zennit 0.5.1's defaults (ε = stabilizer = 1e-6, γ = 0.25):

=========================  ======================  ==========  ===========
preset                     first layer             conv        dense
=========================  ======================  ==========  ===========
``epsilon_plus``           (as its kind)           z⁺          ε
``epsilon_gamma_box``      z-box(low, high), conv  γ           ε
``epsilon_alpha2_beta1``   (as its kind)           α2β1        ε
``epsilon_plus_flat``      flat (any linear)       z⁺          ε
``attn_lrp``               (as its kind)           ε           ε
=========================  ======================  ==========  ===========

``attn_lrp`` adds AttnLRP's softmax, bilinear and layer-norm rules for transformers (Achtibat et
al., ICML 2024; :mod:`visjax.attribution.lrp.transformer`).

Reference: Kohlbrenner et al., "Towards Best Practice in Explaining Neural Network Decisions with
LRP", IJCNN 2020 (composites); Zennit's ``zennit.composites``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from visjax.attribution.lrp.rules import AlphaBeta, Epsilon, Flat, Gamma, Rule, ZBox, ZPlus, as_rule
from visjax.attribution.lrp.transformer import AttnSpec

KINDS = ("conv", "dense")
MaxPool = Literal["winner", "proportional"]


@dataclasses.dataclass(frozen=True, eq=False)
class Composite:
    """Rules per layer: ``names`` (layer path -> rule) first, then ``first`` for the first linear
    layer (restricted to ``first_kinds``), then ``kinds`` (``"conv"``/``"dense"`` -> rule).

    A linear layer that none of them covers is an error naming it (never a silent gradient).
    """

    kinds: Mapping[str, Rule] = dataclasses.field(default_factory=dict)
    names: Mapping[str, Rule] = dataclasses.field(default_factory=dict)
    first: Rule | None = None
    first_kinds: tuple[str, ...] = KINDS
    maxpool: MaxPool = "winner"
    stabilizer: float = 1e-6
    attention: AttnSpec | None = None  # AttnLRP's softmax/norm/bilinear rules (see attn_lrp)

    def __post_init__(self):
        kinds = {k: as_rule(r, f"kinds[{k!r}]") for k, r in dict(self.kinds).items()}
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise ValueError(
                f"`composite` names unknown layer kinds {unknown}; known kinds: {list(KINDS)}"
            )
        object.__setattr__(self, "kinds", kinds)
        names = {p: as_rule(r, f"names[{p!r}]") for p, r in dict(self.names).items()}
        object.__setattr__(self, "names", names)
        if self.first is not None:
            object.__setattr__(self, "first", as_rule(self.first, "first"))
        if self.maxpool not in ("winner", "proportional"):
            raise ValueError(f"`maxpool` must be 'winner' or 'proportional', got {self.maxpool!r}")

    def rule(self, path: str | None, kind: str, first: bool) -> Rule:
        """The rule of a linear layer (``path`` its layer path or None, ``kind`` conv/dense)."""
        if path is not None and path in self.names:
            return self.names[path]
        if first and self.first is not None and kind in self.first_kinds:
            return self.first
        if kind in self.kinds:
            return self.kinds[kind]
        raise ValueError(
            f"the LRP composite has no rule for the {kind} layer {path or '(unnamed)'}: give one "
            f"by kind ({list(KINDS)}) or by layer path"
        )

    def check_paths(self, known: Any) -> None:
        """Raise ``ValueError`` if ``names`` holds a path that is not a layer of the model."""
        unknown = sorted(set(self.names) - set(known))
        if unknown:
            raise ValueError(
                f"`composite` names unknown layers {unknown}; known layers: {list(known)}"
            )


def epsilon_plus(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """z⁺ for convolutions, ε for dense layers (Zennit's ``EpsilonPlus``)."""
    return Composite({"conv": ZPlus(stabilizer), "dense": Epsilon(epsilon)}, stabilizer=stabilizer)


def epsilon_alpha2_beta1(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """α2β1 for convolutions, ε for dense layers (Zennit's ``EpsilonAlpha2Beta1``)."""
    return Composite(
        {"conv": AlphaBeta(2.0, 1.0, stabilizer), "dense": Epsilon(epsilon)}, stabilizer=stabilizer
    )


def epsilon_plus_flat(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """Flat for the first linear layer, z⁺ for convolutions, ε for dense layers (Zennit's
    ``EpsilonPlusFlat``)."""
    return Composite(
        {"conv": ZPlus(stabilizer), "dense": Epsilon(epsilon)},
        first=Flat(stabilizer),
        stabilizer=stabilizer,
    )


def epsilon_gamma_box(
    low: Any, high: Any, *, epsilon: float = 1e-6, gamma: float = 0.25, stabilizer: float = 1e-6
) -> Composite:
    """z-box(low, high) for the first convolution, γ for the others, ε for dense layers (Zennit's
    ``EpsilonGammaBox``)."""
    return Composite(
        {"conv": Gamma(gamma, stabilizer), "dense": Epsilon(epsilon)},
        first=ZBox(low, high, stabilizer),
        first_kinds=("conv",),
        stabilizer=stabilizer,
    )


def attn_lrp(
    epsilon: float = 1e-6,
    stabilizer: float = 1e-6,
    *,
    attention: tuple[str, ...] = ("attn_weights",),
    norms: tuple[str, ...] = (),
) -> Composite:
    """AttnLRP for transformers (Achtibat et al., ICML 2024): ε for every linear layer, the
    softmax, bilinear (``q kᵀ``, ``A v``), layer-norm and identity rules of
    :mod:`visjax.attribution.lrp.transformer`, where the model's requirements are documented.

    Args:
      epsilon: ε of the linear layers.
      stabilizer: ε of the bilinear, norm and sum rules.
      attention: names (last path components or full paths) of the tagged softmax outputs.
      norms: layer paths of tagged normalisation outputs, besides the NNX/Linen norm layers
        found by their parameters.
    """
    if isinstance(attention, str):
        attention = (attention,)
    if isinstance(norms, str):
        norms = (norms,)
    if not attention or not all(isinstance(a, str) and a for a in attention):
        raise ValueError(f"`attention` must name at least one tagged value, got {attention!r}")
    if not all(isinstance(n, str) and n for n in norms):
        raise ValueError(f"`norms` must be layer paths (strings), got {norms!r}")
    return Composite(
        {"conv": Epsilon(epsilon), "dense": Epsilon(epsilon)},
        stabilizer=stabilizer,
        attention=AttnSpec(tuple(attention), tuple(norms)),
    )


PRESETS = {
    "epsilon_plus": epsilon_plus,
    "epsilon_gamma_box": epsilon_gamma_box,
    "epsilon_alpha2_beta1": epsilon_alpha2_beta1,
    "epsilon_plus_flat": epsilon_plus_flat,
    "attn_lrp": attn_lrp,
}
_CACHE: dict[str, Composite] = {}


def as_composite(composite: Any) -> Composite:
    """A :class:`Composite` from one, or a preset's name (``epsilon_gamma_box`` needs its bounds,
    so pass ``epsilon_gamma_box(low, high)``)."""
    if isinstance(composite, Composite):
        return composite
    if composite == "epsilon_gamma_box":
        raise ValueError(
            "the composite 'epsilon_gamma_box' needs the input bounds: pass "
            "`composite=epsilon_gamma_box(low, high)` (the z-box rule needs `low` and `high`)"
        )
    if isinstance(composite, str) and composite in PRESETS:
        if composite not in _CACHE:  # one object per preset: jit caches on it
            _CACHE[composite] = PRESETS[composite]()
        return _CACHE[composite]
    raise ValueError(
        f"`composite` must be a Composite or a preset name, got {composite!r}; known presets: "
        f"{sorted(PRESETS)}"
    )
