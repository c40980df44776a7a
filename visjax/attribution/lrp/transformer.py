"""AttnLRP: the LRP rules for transformers (Achtibat et al., ICML 2024).

The composite ``"attn_lrp"`` (:func:`~visjax.attribution.lrp.composites.attn_lrp`) adds to LRP-ε
for every linear layer the rules of AttnLRP, as the authors' reference code (``lxt``, "LRP
eXplains Transformers", github.com/rachtibat/LRP-eXplains-Transformers, ``lxt/explicit/
functional.py``) computes them:

* **softmax** (Proposition 3.1, the Taylor decomposition at the input with the bias term kept):
  ``R_in = x ⊙ (R_out − s ⊙ Σ_j R_out_j)`` with ``x`` the logits (``−inf`` masked entries read
  as 0, as ``lxt``) and ``s`` the softmax, the sum over the softmax's axis. It is not
  conservative: ``Σ R_in = Σ R_out − Σ_i x_i (s_i Σ_j R_out_j − ...)``, the part the bias
  absorbs (its leak, exact for a shift of the logits: invariant).
* **matrix multiplication of two input-dependent values** (``q kᵀ``, ``A v``; Proposition 3.3):
  ε-LRP of the bilinear map, each operand receiving half, the uniform rule
  (``R_a = a ⊙ J_aᵀ(R / 2 s(z))``, likewise ``b``); an element-wise product of two
  input-dependent values (a gate) gives half to each (Proposition 3.2).
* **layer norm** (Proposition 3.4): the normalisation's statistics held constant (the scale
  ``1/std`` and anything else computed non-linearly from the input, so that the identity rule
  applies to ``x/std`` and to the scale), and ε-LRP on the remaining affine map (the centring
  ``x − mean(x)``, the scale and bias): ``R_in = x ⊙ J_linᵀ(R / s(y))``, ``lxt``'s
  ``layer_norm``. For a bias-free layer norm it conserves the relevance; an RMSNorm gets the
  identity rule.
* **element-wise activations** (GELU, SiLU, ... written out in the program, Equation 9): the
  identity rule, each element-wise operation of one input-dependent value passing the relevance
  through.

Relevance is therefore conserved per block up to the leaks these rules document: the softmax
rule's bias term above and, for every ε-linear layer and layer norm (``y = J x + b`` once the
statistics are held constant), the share ``Σ_j R_j (b_j + ε sign y_j) / (y_j + ε sign y_j)``
its bias and ε absorb (zero biases: within ε).

How the program must be written for AttnLRP to apply:

* every softmax on the path is tagged at its output with a name whose last path component is
  ``"attn_weights"`` (``visjax.tag(jax.nn.softmax(logits), "attn_weights")``, as the zoo ViT
  does; other names via ``attn_lrp(attention=(...))``): the softmax is the tagged value's
  producer, ``exp(logits − max)`` (or ``exp(logits)``) divided by its sum, written out or as
  ``jax.nn.softmax``; the logits are the value entering that ``exp`` (the subtraction of the
  stop-gradient maximum included);
* every layer norm is a submodule of an NNX or Linen model (a layer whose parameters hold a
  ``scale`` and no ``kernel`` and whose state holds no batch statistics: ``LayerNorm``,
  ``RMSNorm``, ``GroupNorm``), or a tagged value named in ``attn_lrp(norms=(...))`` (plain
  functions); the norm's input is the one input-dependent value its computation starts from.

Flax's ``MultiHeadAttention`` (``dot_product_attention``) tags nothing: write the attention out,
as :mod:`visjax.zoo.vit` does (its layer norms, ``nnx.LayerNorm``, are found as they are).
A model with no tagged softmax is refused (``ValueError`` naming what to tag), and so are an
untagged softmax (its division by an input-dependent sum) and an untagged normalisation (a
product of a value with statistics reduced from the input): never a silent gradient.

Reference:
  Achtibat, Hatefi, Dreyer, Jain, Wiegand, Lapuschkin, Samek. "AttnLRP: Attention-Aware
  Layer-Wise Relevance Propagation for Transformers", ICML 2024,
  https://proceedings.mlr.press/v235/achtibat24a.html
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.extend.core as jcore
import jax.numpy as jnp

from visjax.attribution.lrp.rules import stabilize
from visjax.base import interpret

_NO_EXPAND = frozenset(("dot_general", "conv_general_dilated", interpret.NAME_PRIMITIVE))
# Primitives linear in their input-dependent operands (the rest held constant in the norm rule).
_LINEAR_OPS = frozenset(
    "add add_any sub neg reduce_sum broadcast_in_dim reshape squeeze expand_dims transpose "
    "convert_element_type copy slice concatenate pad".split()
)
_REDUCE = frozenset(("reduce_sum", "reduce_max", "reduce_min", "argmax", "reduce_prod"))


@dataclasses.dataclass(frozen=True)
class AttnSpec:
    """Where AttnLRP finds a transformer's softmaxes and norms (see the module docstring)."""

    attention: tuple[str, ...] = ("attn_weights",)
    norms: tuple[str, ...] = ()

    def is_attention(self, name: str) -> bool:
        return any(name == a or name.endswith("." + a) for a in self.attention)


@dataclasses.dataclass(frozen=True, eq=False)
class Region:
    """The equations from one input-dependent value ``x`` to a tagged softmax or norm ``y``."""

    kind: str  # "softmax" | "norm"
    name: str
    x: Any
    y: Any
    eqns: tuple  # in program order; the last produces y
    axes: tuple[int, ...] = ()


def norm_paths(params: Any, state: Any) -> frozenset[str]:
    """Layer paths whose parameters hold a ``scale`` and no ``kernel``, without batch stats."""
    leaves: dict[str, set[str]] = {}
    for tree in (params, state):
        for path, _ in jax.tree_util.tree_leaves_with_path(tree):
            keys = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
            if keys and keys[-1] == "value":
                keys = keys[:-1]
            if keys and keys[0] in ("params", "batch_stats"):
                keys = keys[1:]
            if keys:
                leaves.setdefault(".".join(keys[:-1]), set()).add(keys[-1])
    return frozenset(
        p
        for p, names in leaves.items()
        if "scale" in names and not names & {"kernel", "mean", "var"}
    )


class Plan:
    """What AttnLRP does to one jaxpr: its regions and which values depend on the input."""

    def __init__(self, jaxpr, on_in: list[bool], spec: AttnSpec, norms: frozenset[str]):
        self.on: set[Any] = set()
        self.reduced: set[Any] = set()  # computed from the input through a reduction only
        producer: dict[Any, int] = {}
        uses: dict[Any, list] = {}
        for v, o in zip(jaxpr.invars, on_in, strict=True):
            if o:
                self.on.add(v)
        for i, e in enumerate(jaxpr.eqns):
            live = [v for v in e.invars if isinstance(v, jcore.Var) and v in self.on]
            for v in e.invars:
                if isinstance(v, jcore.Var):
                    uses.setdefault(v, []).append(i)
            for o in e.outvars:
                producer[o] = i
            if live and e.primitive.name != "stop_gradient":
                self.on.update(e.outvars)
                if e.primitive.name in _REDUCE or all(v in self.reduced for v in live):
                    self.reduced.update(e.outvars)
        for v in jaxpr.outvars:
            if isinstance(v, jcore.Var):
                uses.setdefault(v, []).append(len(jaxpr.eqns))
        self.regions: dict[int, Region | None] = {}  # eqn index -> region ending there, or None
        for e in jaxpr.eqns:
            if e.primitive.name != interpret.NAME_PRIMITIVE or e.invars[0] not in self.on:
                continue
            name = e.params["name"]
            if spec.is_attention(name):
                kind = "softmax"
            elif name in norms or name in spec.norms:
                kind = "norm"
            else:
                continue
            self._add(jaxpr, kind, name, e.invars[0], producer, uses)

    def _add(self, jaxpr, kind, name, y, producer, uses) -> None:
        eqns = jaxpr.eqns

        def fail(why: str) -> ValueError:
            what = "softmax" if kind == "softmax" else "normalisation"
            return ValueError(
                f"lrp (attn_lrp): the value tagged {name!r} is not the output of a {what} "
                f"AttnLRP recognises ({why}); see visjax.attribution.lrp.transformer"
            )

        def expand(sources: set, v) -> None:
            if v not in producer or eqns[producer[v]].primitive.name in _NO_EXPAND:
                raise fail(f"its input-dependent operands do not meet in one value before `{v}`")
            e = eqns[producer[v]]
            if e.primitive.name in interpret._CALL_BODIES:
                raise fail(f"`{e.primitive.name}` call in between")
            sources.discard(v)
            reduced[0] |= e.primitive.name in _REDUCE
            sources.update(u for u in e.invars if isinstance(u, jcore.Var) and u in self.on)

        if y not in producer:
            raise fail("it is an input of the program")
        sources = {y}
        reduced = [False]  # a reduction passed: the region holds the statistics
        expand(sources, y)
        while len(sources) > 1 or (sources and not reduced[0]):
            expand(sources, max(sources, key=lambda v: producer.get(v, -1)))
        if not sources:
            raise fail("it does not depend on the input")
        (x,) = sources
        if kind == "softmax":  # exp(x - stop_gradient(max x)) / sum: the logits before the exp
            if x not in producer or eqns[producer[x]].primitive.name != "exp":
                raise fail("no `exp` of the logits divided by its sum")
            expand(sources, x)
            (x,) = sources
            e = eqns[producer[x]] if x in producer else None
            if e is not None and e.primitive.name == "sub" and len(self._live(e)) == 1:
                expand(sources, x)
                (x,) = sources
        # The region: equations descending from x and leading to y.
        start, end = producer.get(x, -1), producer[y]
        desc = {x}
        for i in range(start + 1, end + 1):
            if any(isinstance(v, jcore.Var) and v in desc for v in eqns[i].invars):
                desc.update(eqns[i].outvars)
        anc = {y}
        idx = []
        for i in range(end, start, -1):
            e = eqns[i]
            if any(o in anc for o in e.outvars) and any(o in desc for o in e.outvars):
                anc.update(v for v in e.invars if isinstance(v, jcore.Var))
                idx.append(i)
        idx.reverse()
        inner = {o for i in idx for o in eqns[i].outvars}
        for i in idx:
            if i in self.regions:
                raise fail("it overlaps another tagged softmax or norm")
            for v in eqns[i].invars:
                if isinstance(v, jcore.Var) and v in self.on and v not in inner and v is not x:
                    raise fail(f"it depends on the input through `{v}` besides `{x}`")
            for o in eqns[i].outvars:
                if o is not y and any(u not in idx for u in uses.get(o, [])):
                    raise fail(f"its intermediate value `{o}` is used outside it")
        axes: tuple[int, ...] = ()
        if kind == "softmax":
            sums = [eqns[i] for i in idx if eqns[i].primitive.name == "reduce_sum"]
            if not sums or eqns[end].primitive.name != "div":
                raise fail("no division by a sum")
            axes = tuple(sums[-1].params["axes"])
        for i in idx:
            self.regions[i] = None
        self.regions[end] = Region(kind, name, x, y, tuple(eqns[i] for i in idx), axes)

    def _live(self, e) -> list:
        return [v for v in e.invars if isinstance(v, jcore.Var) and v in self.on]


def _region_fn(region: Region, read: Callable, freeze: bool) -> Callable:
    """``x -> y`` re-evaluating the region; ``freeze``: values non-linear in x held constant."""

    def f(x):
        env = {region.x: x}
        linear = {region.x}
        for e in region.eqns:
            vals = [env[v] if isinstance(v, jcore.Var) and v in env else read(v) for v in e.invars]
            outs = interpret._bind(e, vals)
            lin_in = [v for v in e.invars if isinstance(v, jcore.Var) and v in linear]
            if freeze and lin_in:  # outputs of frozen values only are constants already
                name = e.primitive.name
                if name == "mul":
                    lin = len(lin_in) == 1
                elif name == "div":
                    lin = lin_in == [e.invars[0]] and e.invars[1] is not e.invars[0]
                else:
                    lin = name in _LINEAR_OPS
                if lin:
                    linear.update(e.outvars)
                else:
                    outs = [jax.lax.stop_gradient(o) for o in outs]
            for o, val in zip(e.outvars, outs, strict=True):
                env[o] = val
        return env[region.y]

    return f


def apply_region(region: Region, x: jax.Array, read: Callable, stabilizer: float):
    """The region's value, whose backward is AttnLRP's softmax or norm rule."""
    f = _region_fn(region, read, freeze=False)
    f_lin = _region_fn(region, read, freeze=True)
    axes = region.axes

    @jax.custom_vjp
    def g(x):
        return f(x)

    def fwd(x):
        y = f(x)
        return y, (x, y)

    def bwd(res, r):
        x, y = res
        if region.kind == "softmax":
            xs = jnp.where(jnp.isneginf(x), 0.0, x)
            return (xs * (r - y * jnp.sum(r, axis=axes, keepdims=True)),)
        _, vjp = jax.vjp(f_lin, x)
        return (x * vjp(r / stabilize(y, stabilizer))[0],)

    g.defvjp(fwd, bwd)
    return g(x)


def bilinear(fn: Callable, a: jax.Array, b: jax.Array, stabilizer: float) -> jax.Array:
    """``fn(a, b)`` (bilinear) whose backward is AttnLRP's uniform ε rule: half to each."""

    @jax.custom_vjp
    def g(a, b):
        return fn(a, b)

    def fwd(a, b):
        return fn(a, b), (a, b)

    def bwd(res, r):
        a, b = res
        z, vjp = jax.vjp(fn, a, b)
        ga, gb = vjp(r / (2 * stabilize(z, stabilizer)))
        return a * ga, b * gb

    g.defvjp(fwd, bwd)
    return g(a, b)


@jax.custom_vjp
def uniform(x: jax.Array, y: jax.Array, z: jax.Array) -> jax.Array:
    """``z`` (the element-wise product of ``x`` and ``y``) whose backward gives half to each."""
    return z


uniform.defvjp(lambda x, y, z: (z, None), lambda _, r: (r / 2, r / 2, jnp.zeros_like(r)))


def no_attention_error() -> ValueError:
    return ValueError(
        "lrp (attn_lrp): no attention found: the model tags no softmax output as "
        "'attn_weights' (or the names given by `attn_lrp(attention=...)`); tag each attention's "
        "softmax, `visjax.tag(jax.nn.softmax(logits, axis=-1), 'attn_weights')`, as "
        "visjax.zoo.vit does (see visjax.attribution.lrp.transformer)"
    )
