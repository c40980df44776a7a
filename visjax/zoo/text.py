"""A tiny text transformer on a generated task whose answer is decided by one marked token.

The task (:func:`make_marked`): a sequence of ``length`` tokens starts with the class token
``CLS = 0``; every other position holds a distractor drawn uniformly from the ``distractors``
tokens ``num_classes + 1, ...``, except one position, chosen uniformly, that holds a *marked*
token ``1 + c``: its class ``c`` is the label. The ground truth of any explanation is therefore
known: the marked token's position (``MarkedData.position``), and nothing else carries
information about the label.

The model (:func:`text_transformer`) is the tiny ViT of :mod:`visjax.zoo.vit` for tokens: a
learned token embedding plus learned position embeddings, ``depth`` pre-norm blocks
(``x + attn(norm1(x))``, ``x + mlp(norm2(x))``) written as a Python loop over the blocks, and
the class token after a final LayerNorm through the linear ``head``. Its attention weights
``softmax(q k^T / sqrt(d_head))`` ``(N, heads, T, T)`` are tagged as
``"blocks.{b}.attn.attn_weights"``, so :mod:`visjax.attention` finds them. The input is an int32
token batch ``(N, length)`` (``as_model(..., input_dtype=jnp.int32)``); ``"embed"`` is the
embedding output ``(N, T, dim)``, where gradient methods attribute (``layer="embed"``).

``text_transformer(scan=True)`` is the same network written the usual Flax way, its blocks'
parameters stacked along a leading ``depth`` axis and run by ``nnx.scan`` (as
``digits_vit(scan=True)``): it takes the unrolled model's parameters (stacked on the way in,
:func:`visjax.zoo.vit.stack_blocks`) and gives its logits; values inside the scan are captured
stacked, ``"blocks.attn.attn_weights"`` ``(depth, N, heads, T, T)``. Train the unrolled model
(gradients through ``scan`` run many times slower on XLA:CPU) and explain either.

Training (:func:`trained_text_transformer`: 4,096 generated sequences of 16 tokens, 4 classes,
Adam 3e-3, 3 epochs of batch 64, 2 CPU cores): 100 % test accuracy from the first epoch,
about 5-10 s with compilation,
cached by :mod:`visjax.zoo.cache`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from visjax.base.checks import check_positive_int
from visjax.model import Model, as_model, tag
from visjax.zoo._build import build_nnx
from visjax.zoo._fit import trained_with_adam
from visjax.zoo.cache import Trained
from visjax.zoo.data import Split
from visjax.zoo.train import History
from visjax.zoo.vit import (
    run_stacked_blocks,
    stack_blocks,
    stacked_blocks,
    transformer_block_class,
)

CLS = 0
# Part of the weight cache's key: change it whenever the generator's output changes.
_DATA_VERSION = 1


class MarkedData(NamedTuple):
    """The marked-token task: ``train``/``test`` splits (``x`` int32 ``(N, T)``, ``y`` int32
    ``(N,)``) and the marked token's position in each test sequence ``(N_test,)``."""

    train: Split
    test: Split
    position: np.ndarray
    num_classes: int
    vocab_size: int


def make_marked(
    n: int = 4096,
    *,
    length: int = 16,
    num_classes: int = 4,
    distractors: int = 16,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> MarkedData:
    """Generate the marked-token task (see the module docstring).

    Args:
      n: number of sequences (train and test together).
      length: tokens per sequence, the class token included (at least 3).
      num_classes: number of classes (marked tokens ``1 .. num_classes``).
      distractors: number of distractor tokens.
      test_fraction: the share of sequences held out as the test split.
      seed: seed of ``numpy.random.default_rng``.

    Returns:
      A :class:`MarkedData`; the vocabulary has ``1 + num_classes + distractors`` tokens.
    """
    check_positive_int(n, "n", 2)
    check_positive_int(length, "length", 3)
    check_positive_int(num_classes, "num_classes", 2)
    check_positive_int(distractors, "distractors")
    if not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    x = rng.integers(1 + num_classes, 1 + num_classes + distractors, size=(n, length))
    x[:, 0] = CLS
    y = rng.integers(0, num_classes, size=n)
    pos = rng.integers(1, length, size=n)
    x[np.arange(n), pos] = 1 + y
    x, y, pos = x.astype(np.int32), y.astype(np.int32), pos.astype(np.int32)
    n_test = max(1, round(n * test_fraction))
    cut = n - n_test
    return MarkedData(
        Split(x[:cut], y[:cut]),
        Split(x[cut:], y[cut:]),
        pos[cut:],
        num_classes,
        1 + num_classes + distractors,
    )


def _classes():
    Block = transformer_block_class()  # the ViT's block: same layers, same paths

    class TextTransformer(nnx.Module):
        """A tiny text transformer over int token sequences (see :mod:`visjax.zoo.text`)."""

        def __init__(
            self,
            *,
            vocab_size: int,
            length: int,
            num_classes: int,
            dim: int = 32,
            depth: int = 2,
            heads: int = 2,
            mlp_dim: int = 64,
            rngs: nnx.Rngs,
        ):
            init = jax.nn.initializers.normal(0.02)
            self.tok_embed = nnx.Param(init(rngs.params(), (vocab_size, dim)))
            self.pos_embed = nnx.Param(init(rngs.params(), (1, length, dim)))
            self.blocks = nnx.List(
                [Block(dim, heads=heads, mlp_dim=mlp_dim, rngs=rngs) for _ in range(depth)]
            )
            self.norm = nnx.LayerNorm(dim, rngs=rngs)
            self.head = nnx.Linear(dim, num_classes, rngs=rngs)

        def __call__(self, tokens):
            h = jnp.take(self.tok_embed[...], tokens, axis=0)
            h = tag(h + self.pos_embed[...][:, : tokens.shape[1]], "embed")
            for block in self.blocks:
                h = block(h)
            return self.head(self.norm(h)[:, 0])

    class ScanTextTransformer(TextTransformer):
        """The text transformer with its blocks stacked ``(depth, ...)``, run by ``nnx.scan``."""

        def __init__(
            self, *, dim: int = 32, depth: int = 2, heads: int = 2, mlp_dim: int = 64, **kw
        ):
            super().__init__(dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim, **kw)
            self.blocks = stacked_blocks(
                dim, depth=depth, heads=heads, mlp_dim=mlp_dim, rngs=kw["rngs"]
            )

        def __call__(self, tokens):
            h = jnp.take(self.tok_embed[...], tokens, axis=0)
            h = tag(h + self.pos_embed[...][:, : tokens.shape[1]], "embed")
            return self.head(self.norm(run_stacked_blocks(self.blocks, h))[:, 0])

    return TextTransformer, ScanTextTransformer


@functools.cache
def _built() -> tuple[type, type]:
    return _classes()


def text_class() -> type:
    """The Flax NNX ``TextTransformer`` class (built once, on first use)."""
    return _built()[0]


def scan_text_class() -> type:
    """The Flax NNX ``ScanTextTransformer`` class: the ``TextTransformer`` with its blocks stacked
    and run by ``nnx.scan`` (same constructor)."""
    return _built()[1]


def text_transformer(
    params: dict[str, Any] | None = None,
    *,
    vocab_size: int = 21,
    length: int = 16,
    num_classes: int = 4,
    dim: int = 32,
    depth: int = 2,
    heads: int = 2,
    mlp_dim: int = 64,
    seed: int = 0,
    scan: bool = False,
) -> Model:
    """The tiny text transformer as a visjax :class:`~visjax.Model` (int32 ``(N, length)`` in,
    ``num_classes`` logits out).

    Args:
      params: the parameter tree (``model.params`` of a model with the same settings); fresh
        weights from ``seed`` if None.
      vocab_size: number of token ids (the default fits :func:`make_marked`'s defaults).
      length: tokens per sequence (position embeddings); shorter inputs are accepted.
      num_classes: number of logits.
      dim: token width; a multiple of ``heads``.
      depth: number of transformer blocks.
      heads: attention heads per block.
      mlp_dim: hidden width of the MLPs.
      seed: seed of the initialisation.
      scan: the scan-stacked variant (``nnx.scan`` over blocks whose parameters are stacked
        along a leading ``depth`` axis), with the unrolled model's logits for the same weights;
        ``params`` may be in either layout (:func:`visjax.zoo.vit.stack_blocks`), and fresh
        weights equal the unrolled model's for the same ``seed``. Its attention weights are
        ``"blocks.attn.attn_weights"``, captured ``(depth, N, heads, T, T)``.

    Returns:
      The model; its layers include ``"embed"`` and ``"blocks.{b}.attn.attn_weights"``
      (``"blocks.attn.attn_weights"`` with ``scan=True``).

    Raises:
      ValueError: a bad setting, or ``params`` that do not fit the architecture.

    Example:
      >>> import jax.numpy as jnp
      >>> m = text_transformer()
      >>> m(jnp.zeros((3, 16), jnp.int32)).shape
      (3, 4)
    """
    for name, v in (
        ("vocab_size", vocab_size),
        ("length", length),
        ("num_classes", num_classes),
        ("dim", dim),
        ("depth", depth),
        ("heads", heads),
        ("mlp_dim", mlp_dim),
    ):
        check_positive_int(v, name)
    if dim % heads:
        raise ValueError(f"`dim` ({dim}) must be a multiple of `heads` ({heads})")
    if not isinstance(scan, bool):
        raise TypeError(f"`scan` must be a bool, got {scan!r}")
    settings = dict(
        vocab_size=vocab_size,
        length=length,
        num_classes=num_classes,
        dim=dim,
        depth=depth,
        heads=heads,
        mlp_dim=mlp_dim,
        seed=seed,
    )
    if scan:
        if params is None:  # the unrolled model's fresh weights, stacked
            params = text_transformer(**settings).params
        params = stack_blocks(params)
    cls = scan_text_class() if scan else text_class()

    def make(rngs):
        return cls(
            vocab_size=vocab_size,
            length=length,
            num_classes=num_classes,
            dim=dim,
            depth=depth,
            heads=heads,
            mlp_dim=mlp_dim,
            rngs=rngs,
        )

    module = build_nnx(make, params, seed, normal_std={"tok_embed": 0.02, "pos_embed": 0.02})
    return as_model(module, input_shape=(length,), input_dtype=jnp.int32)


def trained_text_transformer(
    *,
    seed: int = 0,
    epochs: int = 3,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    cache: str | os.PathLike | None = None,
    callback: Callable[[int, History], None] | None = None,
) -> Trained:
    """The text transformer trained on :func:`make_marked` (defaults), cached by its settings.

    The data are fixed (``make_marked()``, data seed 0) whatever ``seed`` is. The first call
    trains (a few seconds on 2 CPU cores) and stores the weights in the cache; later calls load
    them.

    Args:
      seed: seed of the initial weights and of the shuffling.
      epochs, batch_size, learning_rate: training settings (part of the cache key).
      cache: the cache folder (default ``$VISJAX_CACHE`` or the user's cache directory).
      callback: progress callback passed to :func:`visjax.zoo.train` (only called when training).

    Returns:
      ``Trained(model, history, from_cache)``.
    """
    return trained_with_adam(
        "text_transformer",
        text_transformer(seed=seed),
        lambda: make_marked()[:2],  # (train, test)
        {"data": _DATA_VERSION},
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        cache=cache,
        callback=callback,
    )
