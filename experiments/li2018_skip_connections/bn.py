"""Training the BatchNorm digits ResNet with batch statistics (train mode), as Li et al. do.

The network runs in train mode (each BatchNorm normalises by the statistics of its batch), with
Adam and an optional linear learning-rate warm-up; after training, the running statistics are
*recomputed*: one train-mode pass over the whole training split with momentum 0 stores that
split's statistics, so the returned inference-mode model computes on the training split exactly
what the train-mode network computes on it as one batch (no stale exponential moving average).

:func:`visjax.zoo.train` now also trains such models in train mode, but it keeps the moving
averages (momentum 0.9) and has no warm-up; this module predates that and its results (951 s of
training behind RESULTS.md) rest on the recomputed statistics, so it stays.

Used by the Li et al. (2018) and Goodfellow et al. (2015) experiments; weights cached in
``$VISJAX_CACHE`` (or the user's cache folder) under ``experiments-bn-resnet-<hash>.npz``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.flatten_util import ravel_pytree

from visjax.zoo.train import cross_entropy


def _train_module(skip: bool, depth: int, width: int, seed: int):
    from visjax.zoo.resnet import nnx_module

    module = nnx_module(skip=skip, depth=depth, width=width, seed=seed, norm=True)
    module.train()
    return module


@functools.cache
def train_mode_forward(skip: bool, depth: int, width: int):
    """``f(params, stats, x) -> (logits, new_stats)`` with BatchNorm on the batch's statistics.

    ``params`` is a pure dict (as :attr:`visjax.Model.params`); ``new_stats`` are the running
    statistics after one update (momentum as set on the modules).
    """
    graphdef, template, _ = nnx.split(
        _train_module(skip, depth, width, 0), nnx.Param, nnx.BatchStat
    )

    def f(params, stats, x, momentum=None):
        p = jax.tree.unflatten(jax.tree.structure(template), jax.tree.leaves(params))
        # fresh Variable objects at this trace level (a State holds Variables, which may only be
        # mutated at the trace that created them)
        stats = jax.tree.unflatten(jax.tree.structure(stats), jax.tree.leaves(stats))
        m = nnx.merge(graphdef, p, stats)
        if momentum is not None:
            for _, sub in nnx.iter_modules(m):
                if isinstance(sub, nnx.BatchNorm):
                    sub.momentum = momentum
        out = m(x)
        return out, nnx.state(m, nnx.BatchStat)

    return f


def train_mode_loss(skip: bool, depth: int, width: int, stats: Any):
    """``loss(params, (x, y))``: cross-entropy with BatchNorm normalising by the batch itself.

    Evaluated on the whole training split as one batch this is the loss with the statistics
    recomputed at ``params`` (what :func:`recompute_stats` would store).
    """
    f = train_mode_forward(skip, depth, width)

    def loss(params, batch):
        x, y = batch
        return cross_entropy(f(params, stats, x)[0], y)

    return loss


def train_mode_accuracy(skip: bool, depth: int, width: int, stats: Any):
    """As :func:`train_mode_loss`, the accuracy."""
    f = train_mode_forward(skip, depth, width)

    def acc(params, batch):
        x, y = batch
        return (f(params, stats, x)[0].argmax(-1) == y).mean()

    return acc


@functools.cache
def _recompute(skip: bool, depth: int, width: int):
    f = train_mode_forward(skip, depth, width)
    return jax.jit(lambda p, s, x: f(p, s, x, momentum=0.0)[1])


def recompute_stats(skip, depth, width, params, stats, x) -> Any:
    """The running statistics of ``x`` (one train-mode pass with momentum 0)."""
    return _recompute(skip, depth, width)(params, stats, x)


def _key(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _cache_file(config: dict, cache) -> Any:
    from pathlib import Path

    from visjax.zoo.cache import cache_dir

    folder = Path(cache) if cache is not None else cache_dir()
    return folder / f"experiments-bn-resnet-{_key(config)}.npz"


def trained_bn_resnet(
    *,
    skip: bool = True,
    depth: int = 20,
    width: int = 16,
    seed: int = 0,
    epochs: int = 10,
    learning_rate: float = 3e-3,
    warmup_epochs: int = 1,
    batch_size: int = 64,
    cache: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train (or load) the BatchNorm digits ResNet in train mode; statistics recomputed after.

    Returns:
      ``{"model": inference-mode Model (trained weights, recomputed statistics), "init": the
      Model at initialisation (fresh statistics: mean 0, variance 1), "history": {train_loss,
      train_accuracy, test_accuracy: lists per epoch}, "from_cache": bool, "seconds": float}``.
    """
    from visjax.zoo.data import load_digits
    from visjax.zoo.resnet import digits_resnet

    config = {
        "model": "digits_resnet_bn_trainmode",
        "skip": skip,
        "depth": depth,
        "width": width,
        "seed": seed,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "warmup_epochs": warmup_epochs,
        "batch_size": batch_size,
        "optimizer": "adam",
        "stats": "recomputed on the training split",
    }
    init = digits_resnet(skip=skip, depth=depth, width=width, seed=seed, norm=True)
    _, unravel = ravel_pytree((init.params, init.state))
    path = _cache_file(config, cache)
    t0 = time.perf_counter()
    if path.exists():
        z = np.load(path)
        params, stats = unravel(jnp.asarray(z["flat"]))
        history = json.loads(str(z["history"]))
        model = init.replace(params=params, state=stats)
        return {"model": model, "init": init, "history": history, "from_cache": True,
                "seconds": time.perf_counter() - t0}  # fmt: skip

    data = load_digits()
    x_all, y_all = np.asarray(data.train.x), np.asarray(data.train.y)
    n = len(x_all)
    steps_per_epoch = n // batch_size
    warm = warmup_epochs * steps_per_epoch
    schedule = (
        optax.linear_schedule(learning_rate / steps_per_epoch, learning_rate, warm)
        if warm
        else learning_rate
    )
    opt = optax.adam(schedule)
    f = train_mode_forward(skip, depth, width)

    @jax.jit
    def step(params, stats, opt_state, x, y):
        def loss(p):
            logits, new_stats = f(p, stats, x)
            return cross_entropy(logits, y), (logits, new_stats)

        (lv, (logits, new_stats)), g = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = opt.update(g, opt_state, params)
        acc = (logits.argmax(-1) == y).mean()
        return optax.apply_updates(params, updates), new_stats, opt_state, lv, acc

    eval_fn = jax.jit(lambda p, s, x: init.forward(p, s, x))
    rng = np.random.default_rng(seed)
    params, stats = init.params, init.state
    opt_state = opt.init(params)
    history = {"train_loss": [], "train_accuracy": [], "test_accuracy": []}
    for _ in range(epochs):
        order = rng.permutation(n)
        losses, accs = [], []
        for s in range(steps_per_epoch):
            idx = order[s * batch_size : (s + 1) * batch_size]
            params, stats, opt_state, lv, acc = step(
                params, stats, opt_state, x_all[idx], y_all[idx]
            )
            losses.append(lv)
            accs.append(acc)
        history["train_loss"].append(float(np.mean(jax.device_get(losses))))
        history["train_accuracy"].append(float(np.mean(jax.device_get(accs))))
        if not np.isfinite(history["train_loss"][-1]):
            raise FloatingPointError("training diverged")
        stats_now = recompute_stats(skip, depth, width, params, stats, jnp.asarray(x_all))
        logits = eval_fn(params, stats_now, jnp.asarray(data.test.x))
        acc_test = (np.asarray(logits).argmax(-1) == data.test.y).mean()
        history["test_accuracy"].append(float(acc_test))
    stats = recompute_stats(skip, depth, width, params, stats, jnp.asarray(x_all))
    model = init.replace(params=params, state=stats)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat, _ = ravel_pytree((model.params, model.state))
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, flat=np.asarray(flat), history=json.dumps(history))
    os.replace(tmp, path)
    return {"model": model, "init": init, "history": history, "from_cache": False,
            "seconds": time.perf_counter() - t0}  # fmt: skip
