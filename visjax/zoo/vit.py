"""A tiny vision transformer for the 8x8 digits, with its attention weights as named layers.

The ViT of Dosovitskiy et al. (2021), scaled down: the image is cut into ``patch_size`` x
``patch_size`` patches (4x4 = 16 patches for the default 2), each embedded linearly to ``dim``
features; a learned class token is prepended and learned position embeddings added (``T = 17``
tokens); ``depth`` pre-norm transformer blocks follow, ``x + attn(norm1(x))`` then
``x + mlp(norm2(x))``, with multi-head self-attention and a GELU MLP; the class token, after a
final LayerNorm, goes through the linear ``head`` to 10 logits. There is no dropout.

The attention is written out here rather than taken from Flax, so that its weights
``softmax(q k^T / sqrt(d_head))``, of shape ``(N, heads, T, T)`` (row ``i``: how much query token
``i`` attends to each key token), are tagged with :func:`visjax.tag` as a layer of their own.

Layer paths (``model.layers``; shapes for the default settings), each the output of that
submodule unless said otherwise:

* ``"patch_embed"``: the patch embedding, ``(N, 4, 4, dim)`` (a strided convolution).
* ``"embed"``: the token sequence after adding the class token and position embeddings,
  ``(N, T, dim)``; token 0 is the class token, token ``1 + 4 r + c`` the patch in row ``r``,
  column ``c``.
* per block ``b``: ``"blocks.{b}.norm1"``; ``"blocks.{b}.attn.query"``, ``".key"``, ``".value"``
  (``(N, T, dim)``, heads side by side: head ``h`` is features ``h * d_head`` to
  ``(h + 1) * d_head``); ``"blocks.{b}.attn.attn_weights"`` ``(N, heads, T, T)``;
  ``"blocks.{b}.attn.out"``, ``"blocks.{b}.attn"`` (the attention's output, before the residual
  addition); ``"blocks.{b}.norm2"``, ``"blocks.{b}.mlp.fc1"`` (before the GELU),
  ``"blocks.{b}.mlp.fc2"``, ``"blocks.{b}.mlp"``; ``"blocks.{b}"`` (the block's output, the
  residual stream).
* ``"norm"`` (the final LayerNorm over all tokens) and ``"head"`` (the logits).

The scan-stacked variant (``digits_vit(scan=True)``, class ``ScanViT``) holds the same weights with
the blocks' parameters stacked along a leading ``depth`` axis (:func:`stack_blocks`,
:func:`unstack_blocks`) and runs them with ``nnx.scan``; its logits equal the unrolled model's.
Its layers inside the scan drop the block index and are captured stacked: ``"blocks.attn.query"``
``(depth, N, T, dim)``, ``"blocks.attn.attn_weights"`` ``(depth, N, heads, T, T)``, ``"blocks"``
(each block's output) ``(depth, N, T, dim)``; ``"blocks.mlp.fc2[1]"`` is block 1's alone, as the
unrolled model's ``"blocks.1.mlp.fc2"``. Gradients through the scan run many times slower on
XLA:CPU than through the unrolled model.

Fresh parameters follow Flax's default distributions (LeCun-normal kernels, zero biases, unit
LayerNorm scales), drawn by :func:`visjax.zoo._build.build_nnx`; the class token and position
embeddings are normal with standard deviation 0.02, as in timm.

Training (``train(digits_vit(seed=s), load_digits().train, epochs=30, optimizer=optax.adam(
optax.cosine_decay_schedule(1e-2, 30 * 21)), seed=s, test_data=...)``, batch 64 (21 steps an
epoch), 2 CPU cores, seeds 0-2): the default ViT (18,218 parameters) reaches 94.9 / 95.1 / 95.6 %
test accuracy in 7-10 s including compilation, and 85-86 % after 10 epochs (with a 10-epoch
schedule, about 5 s). Without the decay (constant Adam 1e-2 or 3e-3) it plateaus near 91 %.

References:
  Dosovitskiy et al. "An image is worth 16x16 words: transformers for image recognition at
  scale", ICLR 2021. https://arxiv.org/abs/2010.11929
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from visjax.base.checks import check_positive_int
from visjax.model import Model, as_model, tag
from visjax.zoo._build import build_nnx

INPUT_SHAPE = (8, 8, 1)
NUM_CLASSES = 10


def _classes():
    class Attention(nnx.Module):
        """Multi-head self-attention whose weights are the layer ``"attn_weights"``."""

        def __init__(self, dim: int, *, heads: int, rngs: nnx.Rngs):
            self.heads = heads
            self.query = nnx.Linear(dim, dim, rngs=rngs)
            self.key = nnx.Linear(dim, dim, rngs=rngs)
            self.value = nnx.Linear(dim, dim, rngs=rngs)
            self.out = nnx.Linear(dim, dim, rngs=rngs)

        def __call__(self, x):
            n, t, d = x.shape
            d_head = d // self.heads

            def split(h):  # (N, T, D) -> (N, heads, T, d_head)
                return h.reshape(n, t, self.heads, d_head).transpose(0, 2, 1, 3)

            q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
            logits = q @ k.swapaxes(-1, -2) / jnp.sqrt(jnp.asarray(d_head, q.dtype))
            weights = tag(jax.nn.softmax(logits, axis=-1), "attn_weights")
            h = (weights @ v).transpose(0, 2, 1, 3).reshape(n, t, d)
            return self.out(h)

    class MLP(nnx.Module):
        """``fc2(gelu(fc1(x)))``."""

        def __init__(self, dim: int, hidden: int, *, rngs: nnx.Rngs):
            self.fc1 = nnx.Linear(dim, hidden, rngs=rngs)
            self.fc2 = nnx.Linear(hidden, dim, rngs=rngs)

        def __call__(self, x):
            return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))

    class Block(nnx.Module):
        """A pre-norm transformer block."""

        def __init__(self, dim: int, *, heads: int, mlp_dim: int, rngs: nnx.Rngs):
            self.norm1 = nnx.LayerNorm(dim, rngs=rngs)
            self.attn = Attention(dim, heads=heads, rngs=rngs)
            self.norm2 = nnx.LayerNorm(dim, rngs=rngs)
            self.mlp = MLP(dim, mlp_dim, rngs=rngs)

        def __call__(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class ViT(nnx.Module):
        """A tiny vision transformer for 8x8x1 inputs (see :mod:`visjax.zoo.vit`)."""

        def __init__(
            self,
            *,
            patch_size: int = 2,
            dim: int = 32,
            depth: int = 2,
            heads: int = 2,
            mlp_dim: int = 64,
            num_classes: int = NUM_CLASSES,
            rngs: nnx.Rngs,
        ):
            _check_config(patch_size=patch_size, dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim)
            n_tokens = (INPUT_SHAPE[0] // patch_size) * (INPUT_SHAPE[1] // patch_size) + 1
            self.patch_embed = nnx.Conv(
                INPUT_SHAPE[-1],
                dim,
                (patch_size, patch_size),
                strides=patch_size,
                padding="VALID",
                rngs=rngs,
            )
            init = jax.nn.initializers.normal(0.02)
            self.cls_token = nnx.Param(init(rngs.params(), (1, 1, dim)))
            self.pos_embed = nnx.Param(init(rngs.params(), (1, n_tokens, dim)))
            self.blocks = nnx.List(
                [Block(dim, heads=heads, mlp_dim=mlp_dim, rngs=rngs) for _ in range(depth)]
            )
            self.norm = nnx.LayerNorm(dim, rngs=rngs)
            self.head = nnx.Linear(dim, num_classes, rngs=rngs)

        def __call__(self, x):
            patches = self.patch_embed(x)
            n, _, _, d = patches.shape
            cls = jnp.broadcast_to(self.cls_token[...], (n, 1, d))
            h = jnp.concatenate([cls, patches.reshape(n, -1, d)], axis=1)
            h = tag(h + self.pos_embed[...], "embed")
            for block in self.blocks:
                h = block(h)
            return self.head(self.norm(h)[:, 0])

    class ScanViT(ViT):
        """The ViT with its blocks' parameters stacked ``(depth, ...)`` and run by ``nnx.scan``."""

        def __init__(self, *, depth: int = 2, heads: int = 2, mlp_dim: int = 64, **kw):
            super().__init__(depth=depth, heads=heads, mlp_dim=mlp_dim, **kw)
            self.blocks = stacked_blocks(
                self.head.in_features, depth=depth, heads=heads, mlp_dim=mlp_dim, rngs=kw["rngs"]
            )

        def __call__(self, x):
            patches = self.patch_embed(x)
            n, _, _, d = patches.shape
            cls = jnp.broadcast_to(self.cls_token[...], (n, 1, d))
            h = jnp.concatenate([cls, patches.reshape(n, -1, d)], axis=1)
            h = tag(h + self.pos_embed[...], "embed")
            return self.head(self.norm(run_stacked_blocks(self.blocks, h))[:, 0])

    return ViT, ScanViT, Block


def _check_config(*, patch_size: int, dim: int, depth: int, heads: int, mlp_dim: int) -> None:
    for name, v in (
        ("patch_size", patch_size),
        ("dim", dim),
        ("depth", depth),
        ("heads", heads),
        ("mlp_dim", mlp_dim),
    ):
        check_positive_int(v, name)
    if INPUT_SHAPE[0] % patch_size:
        raise ValueError(f"`patch_size` must divide the image size 8, got {patch_size}")
    if dim % heads:
        raise ValueError(f"`dim` ({dim}) must be a multiple of `heads` ({heads})")


@functools.cache
def _built() -> tuple[type, type, type]:
    return _classes()


def vit_class() -> type:
    """The Flax NNX ``ViT`` class (built once, on first use).

    Its constructor is ``ViT(*, patch_size=2, dim=32, depth=2, heads=2, mlp_dim=64,
    num_classes=10, rngs)``.
    """
    return _built()[0]


def transformer_block_class() -> type:
    """The Flax NNX pre-norm transformer ``Block`` the ViT stacks (also the zoo's text model's):
    ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``, the attention weights tagged
    ``"attn_weights"``. Its constructor is ``Block(dim, *, heads, mlp_dim, rngs)``."""
    return _built()[2]


def stacked_blocks(dim: int, *, depth: int, heads: int, mlp_dim: int, rngs: nnx.Rngs):
    """``depth`` transformer blocks (:func:`transformer_block_class`) as one module whose
    parameters are stacked along a leading ``depth`` axis (``nnx.vmap`` over split RNG streams),
    for :func:`run_stacked_blocks`. The scan-stacked ViT and text model build theirs with it."""
    block = transformer_block_class()

    @nnx.split_rngs(splits=depth)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make(rngs):
        return block(dim, heads=heads, mlp_dim=mlp_dim, rngs=rngs)

    return make(rngs)


def run_stacked_blocks(blocks, h: jax.Array) -> jax.Array:
    """``h`` through the :func:`stacked_blocks` ``blocks`` in order, one ``nnx.scan`` step each."""

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def body(h, block):
        return block(h)

    return body(h, blocks)


def scan_vit_class() -> type:
    """The Flax NNX ``ScanViT`` class: the ``ViT`` with its blocks stacked and run by
    ``nnx.scan`` (same constructor)."""
    return _built()[1]


def stack_blocks(params: dict[str, Any]) -> dict[str, Any]:
    """The unrolled ViT's parameters (``params["blocks"][b]``) in the scan-stacked layout
    (``params["blocks"]``, each leaf with a leading ``depth`` axis); other entries shared.

    Args:
      params: ``digits_vit(...).params``.

    Returns:
      The parameters of ``digits_vit(..., scan=True)`` holding the same weights; parameters
      already in the stacked layout are returned as they are.
    """
    if not _is_unrolled(params):
        return params
    blocks = params["blocks"]
    stacked = jax.tree.map(lambda *b: jnp.stack(b), *(blocks[b] for b in range(len(blocks))))
    return {**params, "blocks": stacked}


def unstack_blocks(params: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`stack_blocks`: ``params["blocks"]`` split into ``{b: ...}``."""
    blocks = params["blocks"]
    depth = jax.tree.leaves(blocks)[0].shape[0]
    return {
        **params,
        "blocks": {b: jax.tree.map(lambda a, b=b: a[b], blocks) for b in range(depth)},
    }


def _is_unrolled(params: dict[str, Any]) -> bool:
    return (
        isinstance(params, dict)
        and isinstance(params.get("blocks"), dict)
        and all(isinstance(k, int) for k in params["blocks"])
    )


def nnx_module(
    params: dict[str, Any] | None = None,
    *,
    patch_size: int = 2,
    dim: int = 32,
    depth: int = 2,
    heads: int = 2,
    mlp_dim: int = 64,
    seed: int = 0,
    scan: bool = False,
):
    """A Flax NNX ``ViT``, holding ``params`` if given (fresh weights from ``seed`` otherwise).

    Args:
      params: a parameter tree as :attr:`visjax.Model.params` gives it for the same settings.
      patch_size: side of the square patches; must divide 8.
      dim: token width; a multiple of ``heads``.
      depth: number of transformer blocks.
      heads: attention heads per block.
      mlp_dim: hidden width of the MLPs.
      seed: seed of the initialisation.
      scan: build the ``ScanViT`` (blocks stacked, run by ``nnx.scan``) instead; ``params`` may
        then be in either layout (:func:`stack_blocks`), and fresh weights equal the unrolled
        ViT's for the same ``seed``.

    Returns:
      The ``nnx.Module``.

    Raises:
      ValueError: a bad setting, or ``params`` that do not fit the architecture.
    """
    settings = {"patch_size": patch_size, "dim": dim, "depth": depth, "heads": heads}
    settings["mlp_dim"] = mlp_dim
    std = {"cls_token": 0.02, "pos_embed": 0.02}
    if scan:
        if params is None:  # the unrolled ViT's fresh weights, stacked
            params = nnx.to_pure_dict(nnx.state(nnx_module(**settings, seed=seed), nnx.Param))
        params = stack_blocks(params)
    cls = scan_vit_class() if scan else vit_class()
    return build_nnx(lambda rngs: cls(**settings, rngs=rngs), params, seed, normal_std=std)


def digits_vit(
    params: dict[str, Any] | None = None,
    *,
    patch_size: int = 2,
    dim: int = 32,
    depth: int = 2,
    heads: int = 2,
    mlp_dim: int = 64,
    seed: int = 0,
    scan: bool = False,
) -> Model:
    """The digits ViT as a visjax :class:`~visjax.Model` (input ``(N, 8, 8, 1)``, 10 logits).

    Args:
      params: the parameter tree (``model.params`` of a ViT with the same settings); fresh
        weights from ``seed`` if None.
      patch_size: side of the square patches; must divide 8 (``(8 / patch_size)^2 + 1`` tokens).
      dim: token width; a multiple of ``heads``.
      depth: number of transformer blocks.
      heads: attention heads per block.
      mlp_dim: hidden width of the MLPs.
      seed: seed of the initialisation.
      scan: the scan-stacked variant: the blocks' parameters stacked along a leading ``depth``
        axis (``params["blocks"]["attn"]["query"]["kernel"]`` is ``(depth, dim, dim)``) and run
        by ``nnx.scan``, with the same logits as the unrolled model holding the same weights.
        ``params`` may be in the unrolled or the stacked layout (:func:`stack_blocks`,
        :func:`unstack_blocks`); fresh weights equal the unrolled model's for the same ``seed``.
        Layers inside the scan are captured stacked ``(depth, N, ...)`` under one path
        (``"blocks.attn.attn_weights"`` is ``(depth, N, heads, T, T)``); ``"blocks.mlp.fc2[1]"``
        is block 1's alone, as ``"blocks.1.mlp.fc2"`` of the unrolled model. Gradients through
        the scan run many times slower on XLA:CPU than through the unrolled model.

    Returns:
      The model.

    Raises:
      ValueError: a bad setting, or ``params`` that do not fit the architecture.

    Example:
      >>> import jax.numpy as jnp
      >>> m = digits_vit()
      >>> _, acts = m.activations(jnp.zeros((3, 8, 8, 1)), "blocks.1.attn.attn_weights")
      >>> acts["blocks.1.attn.attn_weights"].shape
      (3, 2, 17, 17)
    """
    module = nnx_module(
        params,
        patch_size=patch_size,
        dim=dim,
        depth=depth,
        heads=heads,
        mlp_dim=mlp_dim,
        seed=seed,
        scan=scan,
    )
    return as_model(module, input_shape=INPUT_SHAPE)
