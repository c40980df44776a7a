"""Per-example gradients by ``vmap`` and the noise statistics built on them.

The loss convention of all parameter-space tools (docs/design.md, principle 1): a loss
``loss_fn(params, batch) -> scalar``, the mean over the batch. Example ``i``'s gradient is
``g_i = ∇ loss_fn(params, batch[i:i+1])``: each example is passed as a batch of *one* (the leading
axis kept), so the batch-mean convention holds, and ``jax.vmap`` runs the examples of a chunk of
``batch_size`` together. Chunks run unrolled inside one jit (a loop of gradient work inside an XLA
loop body measured 20-40x slower on XLA:CPU, docs/design.md).

Per-example gradients exist only when the loss of example ``i`` does not depend on example ``j``.
BatchNorm in training mode (batch statistics), or a loss normalised by a batch statistic, couples
the examples and makes ``g_i`` ill-defined; both public functions detect that (see
:func:`per_example_stats`) and raise a ``ValueError`` pointing to the inference-mode route.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.batching import (
    AUTO,
    AUTO_MAX_UNROLLED,
    MAX_UNROLL,
    chunked_sum,
    resolve_batch_size,
)
from visjax.base.checks import check_batch_size, check_finite_tree, is_concrete, scalar_loss
from visjax.base.data import check_data, data_sum
from visjax.base.trees import layer_groups, param_paths, select

LossFn = Callable[[Any, Any], jax.Array]

GSNR_EPS = 1e-5  # Cockpit's MeanGSNR stabiliser in the variance denominator
_N_CHECK = 4  # examples used by the coupling check
_CHECK_RTOL = 1e-3


class GradientNoise(NamedTuple):
    """Noise statistics of the per-example gradients of one parameter group (0-d arrays).

    With ``g_i`` the gradient of example ``i``, ``N`` examples, ``ḡ = (1/N) Σ g_i`` (the
    gradient of the batch-mean loss) and ``tr Σ̂ = Σ_i ‖g_i − ḡ‖² / (N − 1)`` (the fields as
    computed by default; with ``per_example_stats(..., population=True)`` ``variance`` is
    ``Σ_i ‖g_i − ḡ‖² / N``, ``true_grad_norm_sq`` is ``‖ḡ‖²`` and ``noise_scale`` their ratio):

    Attributes:
      grad_norm_sq: ``‖ḡ‖²``.
      mean_norm_sq: ``(1/N) Σ_i ‖g_i‖²``.
      variance: ``tr Σ̂``, the trace of the unbiased per-example covariance.
      true_grad_norm_sq: ``‖ḡ‖² − tr Σ̂ / N``, the unbiased estimate of ``|G|²`` (the squared
        norm of the expected gradient); ``‖ḡ‖²`` alone overestimates it by ``tr Σ / N``.
      noise_scale: McCandlish et al.'s ``B_simple = tr Σ̂ / (‖ḡ‖² − tr Σ̂ / N)``; ``+inf`` when
        the denominator is ``≤ 0`` (the batch cannot resolve the expected gradient).
      snr: the mean gradient signal-to-noise ratio (GSNR) of Liu et al. as Cockpit reports it,
        ``mean_j ḡ_j² / (σ̂_j² + 10⁻⁵)`` over the group's entries ``j``, with the *biased*
        per-entry variance ``σ̂_j² = (1/N) Σ_i (g_ij − ḡ_j)²``.
      norm_test: Cockpit's norm test, ``√(tr Σ̂ / (N ‖ḡ‖²))``: the smallest ``θ`` for which
        the norm test ``tr Σ̂ / N ≤ θ² ‖ḡ‖²`` of Byrd et al. passes.
      inner_test: Cockpit's inner-product test, ``√(Var̂(g_i·ḡ) / (N ‖ḡ‖⁴))`` with the unbiased
        sample variance of the projections ``g_i·ḡ``: the smallest ``θ`` for which the test of
        Bollapragada et al. passes.
    """

    grad_norm_sq: jax.Array
    mean_norm_sq: jax.Array
    variance: jax.Array
    true_grad_norm_sq: jax.Array
    noise_scale: jax.Array
    snr: jax.Array
    norm_test: jax.Array
    inner_test: jax.Array


class PerExampleStats(NamedTuple):
    """:class:`GradientNoise` over all included parameters and per group."""

    total: GradientNoise
    groups: dict[str, GradientNoise]


# --------------------------------------------------------------------------- checks


def _one(example: Any) -> Any:
    return jax.tree.map(lambda a: a[None], example)


@functools.partial(jax.jit, static_argnames=("loss_fn",))
def _coupling(loss_fn, params, few):
    vg = jax.value_and_grad(scalar_loss(loss_fn))
    loss, grad = vg(params, few)
    losses, grads = jax.vmap(lambda ex: vg(params, _one(ex)))(few)
    flat = jnp.concatenate([g.ravel() for g in jax.tree.leaves(grad)])
    mean = jnp.concatenate([g.mean(0).ravel() for g in jax.tree.leaves(grads)])
    norm = jnp.linalg.norm
    return loss, losses.mean(), norm(flat - mean), norm(flat), norm(mean)


def _check_decoupled(loss_fn: LossFn, params: Any, batch: Any) -> None:
    """Raise if the batch gradient of a few examples is not the mean of their own gradients."""
    leaves = jax.tree.leaves((params, batch))
    if not all(is_concrete(a) for a in leaves):
        return  # under a caller's jit: values unknown, the check is skipped (documented)
    few = jax.tree.map(lambda a: a[:_N_CHECK], batch)
    k = jax.tree.leaves(few)[0].shape[0]
    if k < 2:
        return
    loss, mean_loss, diff, gb, gm = (float(v) for v in _coupling(loss_fn, params, few))
    loss_off = abs(loss - mean_loss) > _CHECK_RTOL * max(abs(loss), abs(mean_loss), 1e-30)
    grad_off = diff > _CHECK_RTOL * max(gb, gm, 1e-30)
    if loss_off or grad_off:
        raise ValueError(
            f"`loss_fn` couples the examples of a batch: on the first {k} examples the batch "
            f"loss is {loss:.6g} against {mean_loss:.6g} for the mean of their single-example "
            f"losses, and the gradients differ by {diff / max(gb, gm, 1e-30):.3g} (relative). "
            "Per-example gradients are ill-defined when one example's loss depends on the "
            "others, e.g. BatchNorm in training mode (batch statistics) or a loss normalised by "
            "a batch statistic; evaluate the model in inference mode (Flax NNX: "
            "nnx.view(model, use_running_average=True); Linen: apply with the running "
            "averages, e.g. use_running_average=True / train=False) and make `loss_fn` the mean "
            "of per-example losses (not their sum)."
        )


# --------------------------------------------------------------------------- gradients


def _grads_of_chunk(loss_fn: LossFn, params: Any, chunk: Any) -> Any:
    grad = jax.grad(scalar_loss(loss_fn))
    return jax.vmap(lambda ex: grad(params, _one(ex)))(chunk)


@functools.partial(jax.jit, static_argnames=("loss_fn", "batch_size"))
def _per_example_grads(loss_fn, params, batch, batch_size):
    n = jax.tree.leaves(batch)[0].shape[0]
    # "auto": the rule of visjax.base.batching, resolved here where the chunks are cut (at most
    # AUTO_MAX_UNROLLED unrolled chunks: gradient work, so no scan).
    batch_size = resolve_batch_size(
        batch_size,
        lambda b: _grads_of_chunk(loss_fn, params, b),
        batch,
        max_chunks=AUTO_MAX_UNROLLED,
    )
    size = n if batch_size is None else min(batch_size, n)
    starts = range(0, n, size)
    if len(starts) > MAX_UNROLL:
        grad = jax.grad(scalar_loss(loss_fn))
        return jax.lax.map(lambda ex: grad(params, _one(ex)), batch, batch_size=size)
    parts = [
        _grads_of_chunk(loss_fn, params, jax.tree.map(lambda a, s=s: a[s : s + size], batch))
        for s in starts
    ]
    return jax.tree.map(lambda *a: jnp.concatenate(a), *parts)


def per_example_grads(
    loss_fn: LossFn, params: Any, *, data: Any, batch_size: int | str | None = AUTO
) -> Any:
    """The gradient of each example's loss: ``g_i = ∇_θ loss_fn(θ, data[i:i+1])``.

    Each example is passed to ``loss_fn`` as a batch of one (leading axis of size 1), and
    ``jax.vmap`` runs the examples of a chunk of ``batch_size`` at once, so at most
    ``batch_size`` examples' activations live at a time; the result holds all ``N`` gradients
    (use :func:`per_example_stats` when only statistics are needed).

    Args:
      loss_fn: ``(params, batch) -> scalar``, the batch mean (static: pass the same function
        object to avoid recompiling).
      params: the parameters (a pytree).
      data: the loss batch, a pytree of arrays with a shared leading example axis ``N``.
      batch_size: examples per vmapped chunk (static); ``None``: all at once; ``"auto"``
        (default): chunks of about 8 MiB of intermediates on CPU (512 MiB on GPU/TPU), at most
        16 unrolled chunks (:func:`visjax.base.batching.auto_rows`).

    Returns:
      A pytree like ``params`` whose leaves have a leading axis ``N``.

    Raises:
      TypeError: ``params`` not a non-empty pytree of floating arrays.
      ValueError: a ``data`` without one shared, non-empty leading size, NaN/Inf in ``data`` or
        ``params`` (the leaf named), a ``batch_size`` that is not a positive int, or a
        ``loss_fn`` that couples the examples (BatchNorm in training mode; checked on the first
        4 examples when the inputs are concrete, skipped under a caller's ``jit``; see
        :func:`per_example_stats`).

    Example:
      >>> import jax.numpy as jnp
      >>> loss = lambda w, b: (0.5 * (b[0] @ w - b[1]) ** 2).mean()
      >>> x, y = jnp.array([[1.0, 0.0], [0.0, 2.0]]), jnp.array([1.0, 0.0])
      >>> per_example_grads(loss, jnp.array([2.0, 1.0]), data=(x, y))
      Array([[1., 0.],
             [0., 4.]], dtype=float32)

    References:
      Goodfellow, "Efficient Per-Example Gradient Computations", arXiv:1510.01799, 2015;
      the ``vmap(grad)`` recipe of JAX's documentation ("Per-example gradients").
    """
    check_data(data, "data")
    check_batch_size(batch_size)
    check_finite_tree(params, "params")
    _check_decoupled(loss_fn, params, data)
    return _per_example_grads(loss_fn, params, data, batch_size)


# --------------------------------------------------------------------------- statistics


def _resolve(params: Any, groups: Any, include: Any) -> tuple[tuple[int, ...], tuple]:
    """Included leaf indices, and each group as (name, positions among the included leaves)."""
    paths = param_paths(params)
    if include is None:
        included = tuple(range(len(paths)))
    else:
        included = tuple(i for i, s in enumerate(jax.tree.leaves(select(params, include))) if s)
        if not included:
            raise ValueError(f"`include` {include!r} matches no parameter (paths: {paths})")
    position = {leaf: k for k, leaf in enumerate(included)}
    resolved = []
    if isinstance(groups, str) and groups == "layers":
        for name, members in layer_groups(params).items():
            pos = tuple(position[paths.index(p)] for p in members if paths.index(p) in position)
            if pos:
                resolved.append((name, pos))
    elif isinstance(groups, Mapping) and groups:
        for name, patterns in groups.items():
            hits = jax.tree.leaves(select(params, patterns))
            pos = tuple(position[i] for i, s in enumerate(hits) if s and i in position)
            if not pos:
                raise ValueError(
                    f"`groups` entry {name!r} matches no included parameter (paths: {paths})"
                )
            resolved.append((str(name), pos))
    else:
        raise ValueError(
            f"`groups` must be 'layers' or a non-empty mapping name -> patterns, got {groups!r}"
        )
    return included, tuple(resolved)


def _noise(gbar, sq, norm_sq, proj_sq, n, population) -> GradientNoise:
    g2 = sum((g**2).sum() for g in gbar)
    centred = sum(s.sum() for s in sq)
    variance = centred / (n - 1)  # the sample's tr Σ̂: the tests below use it in both modes
    size = sum(g.size for g in gbar)
    gsnr = sum((g**2 / (s / n + GSNR_EPS)).sum() for g, s in zip(gbar, sq, strict=True)) / size
    if population:  # ḡ is the exact gradient and tr Σ the population variance
        trace, true_g2 = centred / n, g2
    else:
        trace, true_g2 = variance, g2 - variance / n
    return GradientNoise(
        grad_norm_sq=g2,
        mean_norm_sq=norm_sq / n,
        variance=trace,
        true_grad_norm_sq=true_g2,
        noise_scale=jnp.where(true_g2 > 0, trace / true_g2, jnp.inf),
        snr=gsnr,
        norm_test=jnp.sqrt(variance / (n * g2)),
        inner_test=jnp.sqrt(proj_sq / (n - 1) / (n * g2**2)),
    )


@functools.partial(
    jax.jit, static_argnames=("loss_fn", "included", "groups", "batch_size", "population")
)
def _stats(loss_fn, params, batch, included, groups, batch_size, population):
    leaves, treedef = jax.tree.flatten(params)

    def sub_loss(sub, b):
        full = list(leaves)
        for i, a in zip(included, sub, strict=True):
            full[i] = a
        return loss_fn(jax.tree.unflatten(treedef, full), b)

    sub = [leaves[i] for i in included]
    n = jax.tree.leaves(batch)[0].shape[0]
    # Pass 1: ḡ as the gradient of the batch-mean loss (one batched gradient, no vmap).
    gbar = data_sum(lambda b: jax.grad(scalar_loss(sub_loss))(sub, b), batch, batch_size)
    b_leaves, b_def = jax.tree.flatten(batch)
    members = [pos for _, pos in groups]

    # Pass 2: sums over the examples of centred quantities (the stable two-pass variance).
    def chunk(*parts):
        g = _grads_of_chunk(sub_loss, sub, jax.tree.unflatten(b_def, parts))
        d = [gi - m for gi, m in zip(g, gbar, strict=True)]
        sq = [(di**2).sum(0) for di in d]
        norms = [(gi**2).reshape(gi.shape[0], -1).sum(1) for gi in g]  # (n_chunk,) per leaf
        dots = [(di * m).reshape(di.shape[0], -1).sum(1) for di, m in zip(d, gbar, strict=True)]
        proj = [sum(dots[k] for k in pos) for pos in members]
        return {
            "sq": sq,
            "norm": [a.sum() for a in norms],
            "proj": [(p**2).sum() for p in proj],
            "proj_total": (sum(dots) ** 2).sum(),
        }

    acc = chunked_sum(chunk, *b_leaves, batch_size=batch_size)
    total = _noise(gbar, acc["sq"], sum(acc["norm"]), acc["proj_total"], n, population)
    per_group = {
        name: _noise(
            [gbar[k] for k in pos],
            [acc["sq"][k] for k in pos],
            sum(acc["norm"][k] for k in pos),
            acc["proj"][j],
            n,
            population,
        )
        for j, (name, pos) in enumerate(groups)
    }
    return PerExampleStats(total, per_group)


def per_example_stats(
    loss_fn: LossFn,
    params: Any,
    *,
    data: Any,
    groups: str | Mapping[str, str | Sequence[str]] = "layers",
    include: str | Sequence[str] | None = None,
    batch_size: int | str | None = AUTO,
    population: bool = False,
) -> PerExampleStats:
    """Gradient noise statistics from per-example gradients, in bounded memory.

    With ``g_i = ∇ loss_fn(θ, batch[i:i+1])`` (see :func:`per_example_grads`), ``N`` examples,
    ``ḡ = (1/N) Σ g_i`` and the unbiased covariance trace ``tr Σ̂ = Σ_i ‖g_i − ḡ‖² / (N − 1)``,
    each :class:`GradientNoise` holds (all restricted to a group's entries for that group):

    * ``‖ḡ‖²``, ``(1/N) Σ ‖g_i‖²`` and ``tr Σ̂``;
    * ``|G|² ≈ ‖ḡ‖² − tr Σ̂ / N``: ``E‖ḡ‖² = |G|² + tr Σ / N``, so ``‖ḡ‖²`` is biased upwards
      and this is the unbiased estimate; it equals McCandlish et al.'s two-batch estimator
      (their App. A.1) with ``B_small = 1`` (the ``g_i``) and ``B_big = N``;
    * the simple noise scale ``B_simple = tr Σ̂ / (‖ḡ‖² − tr Σ̂ / N)`` (McCandlish et al.,
      eq. 2.8, with both estimates unbiased; the ratio itself is not, and they advise averaging
      numerator and denominator over steps before dividing: both are fields). ``+inf`` when the
      estimated ``|G|²`` is ``≤ 0``;
    * the mean GSNR ``mean_j ḡ_j² / (σ̂_j² + 10⁻⁵)``, ``σ̂_j² = (1/N) Σ_i (g_ij − ḡ_j)²``
      (Liu et al. 2020, exactly as Cockpit's ``MeanGSNR`` computes it: biased variance, its
      ``ε = 10⁻⁵``);
    * Cockpit's norm test ``√(tr Σ̂ / (N ‖ḡ‖²))`` (Byrd et al. 2012, eq. 3.9) and inner-product
      test ``√(Σ_i (g_i·ḡ − ‖ḡ‖²)² / ((N − 1) N ‖ḡ‖⁴))`` (Bollapragada et al. 2018, eq. 2.6):
      the smallest ``θ`` for which each test passes. Cockpit writes them with BackPACK's
      ``batch_grad = g_i / N``; substituted, its formulas are these.

    ``population=True`` is for data that *is* the whole distribution of interest (typically the
    full training set, the usual "``B_simple`` over the dataset"): then ``ḡ = G`` exactly, there
    is no finite-sample error to correct, and ``variance`` becomes the population trace
    ``tr Σ = Σ_i ‖g_i − ḡ‖² / N``, ``true_grad_norm_sq`` is ``‖ḡ‖²`` and ``noise_scale`` is
    ``B_simple = tr Σ / ‖ḡ‖²`` (McCandlish et al. eq. 2.8 with the exact ``G`` and ``Σ``;
    their App. A's estimators exist only because ``G`` and ``Σ`` are estimated from samples).
    The default's estimate would otherwise inflate it: applied to a population whose value is
    ``B``, it gives ``B N / (N − 1 − B)``, and ``+inf`` once ``B ≥ N − 1``. ``snr``,
    ``norm_test`` and ``inner_test`` are the same in both modes (sample statistics by
    definition).

    ``‖ḡ‖² = 0`` gives ``inf``/``NaN`` in the ratios. ``ḡ`` is computed as the gradient of the
    batch-mean loss (one batched gradient), which equals the mean of the ``g_i`` for a loss
    that is the mean of per-example losses (checked, see Raises). A second pass evaluates the
    ``g_i`` chunk by chunk and sums centred quantities (``g_i − ḡ``: the numerically stable
    two-pass variance), so at most ``batch_size`` per-example gradients exist at a time and
    memory beyond them is a few parameter-sized sums.

    Args:
      loss_fn: ``(params, batch) -> scalar``, the batch mean (static).
      params: the parameters (a pytree).
      data: the loss batch, a pytree of arrays with a shared leading example axis, ``N ≥ 2``.
      groups: ``"layers"`` (one group per module, :func:`visjax.curvature.layer_groups`) or a
        mapping group name -> glob pattern(s) over dotted parameter paths
        (:func:`visjax.landscape.directions.select`); static. Groups may overlap.
      include: glob pattern(s) of the parameters that enter the statistics (``None``: all);
        only their gradients are computed. ``"layers"`` groups left empty are dropped.
      batch_size: examples per chunk of each pass (static); ``None``: all at once; ``"auto"``
        (default): chunks of about 8 MiB of intermediates on CPU (512 MiB on GPU/TPU), at most
        16 unrolled chunks per pass (:func:`visjax.base.batching.auto_rows`).
      population: ``False`` (default): the ``N`` examples are a sample of the data
        distribution (unbiased estimates, above); ``True``: they are the whole population
        (``variance``, ``true_grad_norm_sq`` and ``noise_scale`` without the finite-sample
        correction, see above). Static.

    Returns:
      :class:`PerExampleStats` with ``total`` over all included parameters and ``groups``
      (name -> :class:`GradientNoise`, in the order given).

    Raises:
      TypeError: a ``population`` that is not a bool, ``params`` not floating arrays.
      ValueError: a bad ``data`` (no shared non-empty leading size, or ``N < 2``), NaN/Inf in
        ``data`` or ``params`` (the leaf named),
        ``batch_size``, ``groups`` or ``include`` (named), or a ``loss_fn`` that couples the
        examples. The coupling check compares, on the first 4 examples, the batch-mean loss
        and its gradient with the mean of the single-example ones (relative tolerance 10⁻³):
        BatchNorm in training mode, a loss normalised by a batch statistic, or a sum instead
        of a mean fails it. It runs when ``params`` and ``data`` are concrete (one small
        compiled call) and is skipped under a caller's ``jit``. The route for BatchNorm is
        inference mode (running averages): per-example gradients are then well defined.

    Example:
      >>> import jax.numpy as jnp
      >>> loss = lambda p, b: (0.5 * (b[0] @ p["w"] - b[1]) ** 2).mean()
      >>> x, y = jnp.array([[1.0, 0.0], [0.0, 2.0]]), jnp.array([1.0, 0.0])
      >>> s = per_example_stats(loss, {"w": jnp.array([2.0, 1.0])}, data=(x, y))
      >>> float(s.total.grad_norm_sq), float(s.total.variance), float(s.groups["w"].variance)
      (4.25, 8.5, 8.5)

    References:
      McCandlish, Kaplan, Amodei et al., "An Empirical Model of Large-Batch Training",
      arXiv:1812.06162, 2018; Liu et al., "Understanding Why Neural Networks Generalize Well
      Through GSNR of Parameters", ICLR 2020; Byrd, Chin, Nocedal, Wu, "Sample Size Selection
      in Optimization Methods for Machine Learning", Math. Program. 2012; Bollapragada, Byrd,
      Nocedal, "Adaptive Sampling Strategies for Stochastic Optimization", SIAM J. Optim. 2018;
      Schneider, Dangel, Hennig, "Cockpit: A Practical Debugging Tool for the Training of Deep
      Neural Networks", NeurIPS 2021 (``cockpit/quantities/{norm_test,inner_test,mean_gsnr}``).
    """
    n = check_data(data, "data")
    if n < 2:
        raise ValueError(f"`data` must hold at least 2 examples for variances, got {n}")
    check_batch_size(batch_size)
    if not isinstance(population, bool | np.bool_):
        raise TypeError(f"`population` must be a bool, got {population!r}")
    check_finite_tree(params, "params")
    included, resolved = _resolve(params, groups, include)
    _check_decoupled(loss_fn, params, data)
    return _stats(loss_fn, params, data, included, resolved, batch_size, bool(population))
