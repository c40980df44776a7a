"""Training small zoo models with optax: a Python loop over one jitted step.

On XLA:CPU a training epoch written as one ``lax.scan`` measured 19-23x slower than a Python loop of
jitted steps (docs/design.md), so ``train`` drives a jitted step from Python.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from visjax.base.callbacks import CheckpointWriter
from visjax.base.checks import check_positive_int
from visjax.base.progress import progress_bar, resolve_progress
from visjax.model import Model, as_model
from visjax.zoo.data import Split


class History(NamedTuple):
    """Per-epoch training record (lists of floats, one entry per epoch)."""

    train_loss: list[float]
    train_accuracy: list[float]
    test_loss: list[float]
    test_accuracy: list[float]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of ``logits (N, C)`` against integer ``labels (N,)``."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _loss(params, model: Model, x, y):
    logits = model.apply(params, x)
    return cross_entropy(logits, y), logits


def _loss_train_mode(params, state, model: Model, x, y):
    logits, state = model.apply_train(params, state, x)
    return cross_entropy(logits, y), (logits, state)


@jax.jit
def _evaluate(model: Model, x, y):
    logits = model(x)
    return cross_entropy(logits, y), (logits.argmax(-1) == y).mean()


def evaluate(model: Any, data: Split) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``data``.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      data: the split to evaluate on.

    Returns:
      ``(loss, accuracy)``.
    """
    loss, acc = _evaluate(as_model(model), jnp.asarray(data.x), jnp.asarray(data.y))
    return float(loss), float(acc)


def train(
    model: Any,
    train_data: Split,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    optimizer: optax.GradientTransformation | None = None,
    seed: int = 0,
    test_data: Split | None = None,
    callback: Callable[[int, History], None] | None = None,
    trajectory: CheckpointWriter | None = None,
    progress: bool | str = "auto",
    batch_stats: bool | None = None,
) -> tuple[Model, History]:
    """Train ``model`` (anything :func:`visjax.as_model` accepts) by minibatch cross-entropy.

    Deterministic for a given ``seed`` on a given machine: the shuffling comes from
    ``numpy.random.default_rng(seed)``. Each epoch visits ``len(x) // batch_size`` full batches of a
    fresh permutation (a short last batch would compile a second step).

    A model with batch statistics (an NNX model with ``nnx.BatchNorm``) trains in training mode,
    as ``module.train()`` would in Flax: each step normalises with the statistics of its batch and
    updates the running averages by the module's ``momentum`` (0.99 by default); the returned
    model's :attr:`~visjax.Model.state` holds them. Evaluation (``test_data``, :func:`evaluate`)
    runs in inference mode on the running averages. Dropout stays off (inference mode) either way.

    Args:
      model: the model to train; its parameters are the starting point.
      train_data: the training split.
      epochs: number of passes over the data.
      batch_size: examples per step.
      optimizer: an optax transformation; ``optax.adam(1e-2)`` if None.
      seed: seed for the shuffling.
      test_data: evaluated after each epoch when given (otherwise the test entries stay empty).
      callback: called as ``callback(epoch, history)`` after each epoch (progress reporting).
      trajectory: a :class:`visjax.base.callbacks.CheckpointWriter` (anything with
        ``save(step, params)``, e.g. a :class:`visjax.landscape.trajectory.TrajectoryWriter`);
        when given, the parameters are saved as step 0 before training and as step
        ``epoch + 1`` after each epoch: ``epochs + 1`` checkpoints (a ``TrajectoryWriter``'s are
        read back with :func:`visjax.landscape.trajectory.load_trajectory`).
      progress: a bar over the epochs (with the last loss and accuracies): ``"auto"`` (default)
        when standard error is a terminal, ``True``/``False`` force it.
      batch_stats: train in training mode and update the batch statistics: ``None`` (default)
        when the model has them (:attr:`visjax.Model.has_batch_stats`), ``False`` keeps them
        fixed (inference mode, as before this option existed). NNX models only: a Linen model's
        ``batch_stats`` stay fixed (Linen has no generic train switch), with a warning.

    Returns:
      ``(trained model, History)``.
    """
    model = as_model(model)
    n = len(train_data.x)
    if check_positive_int(batch_size, "batch_size") > n:
        raise ValueError(f"`batch_size` must be in [1, {n}], got {batch_size}")
    check_positive_int(epochs, "epochs")
    show = resolve_progress(progress)
    opt = optax.adam(1e-2) if optimizer is None else optimizer
    writer = trajectory
    if writer is not None and not isinstance(writer, CheckpointWriter):
        raise TypeError(
            "`trajectory` must have a `save(step, params)` method (for example a "
            f"visjax.landscape.trajectory.TrajectoryWriter), got {type(writer).__name__}"
        )
    if _train_mode(model, batch_stats):
        return _train_batch_stats(
            model, train_data, opt, epochs, batch_size, seed, test_data, callback, writer, show
        )

    @jax.jit
    def step(params, opt_state, model, x, y):
        (loss, logits), grads = jax.value_and_grad(_loss, has_aux=True)(params, model, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        acc = (logits.argmax(-1) == y).mean()
        return optax.apply_updates(params, updates), opt_state, loss, acc

    rng = np.random.default_rng(seed)
    params, opt_state = model.params, opt.init(model.params)
    x_all, y_all = np.asarray(train_data.x), np.asarray(train_data.y)
    history = History([], [], [], [])
    if writer is not None:
        writer.save(0, params)
    with progress_bar(epochs, desc="training", unit="epoch", enabled=show) as bar:
        for epoch in range(epochs):
            params, opt_state = _epoch(
                step, params, opt_state, model, x_all, y_all, rng, batch_size, epoch, history
            )
            if test_data is not None:
                test_loss, test_acc = evaluate(model.replace(params=params), test_data)
                history.test_loss.append(test_loss)
                history.test_accuracy.append(test_acc)
            if writer is not None:
                writer.save(epoch + 1, params)
            bar.update(1)
            postfix = {"loss": f"{history.train_loss[-1]:.3f}"}
            if history.test_accuracy:
                postfix["test_acc"] = f"{history.test_accuracy[-1]:.3f}"
            bar.set_postfix(postfix)
            if callback is not None:
                callback(epoch, history)
    return model.replace(params=params), history


def _epoch(step, params, opt_state, model, x_all, y_all, rng, batch_size, epoch, history):
    """One pass over a fresh permutation; appends the epoch's train loss and accuracy."""
    n = len(x_all)
    order = rng.permutation(n)
    losses, accs = [], []
    for start in range(0, n - batch_size + 1, batch_size):
        idx = order[start : start + batch_size]
        params, opt_state, loss, acc = step(params, opt_state, model, x_all[idx], y_all[idx])
        losses.append(loss)
        accs.append(acc)
    _record(history, losses, accs, epoch)
    return params, opt_state


def _train_mode(model: Model, batch_stats: bool | None) -> bool:
    """Whether to train ``model`` in training mode (validates ``batch_stats``)."""
    if batch_stats is not None and not isinstance(batch_stats, bool):
        raise TypeError(f"`batch_stats` must be a bool or None, got {batch_stats!r}")
    has = model.has_batch_stats
    if model.kind == "linen" and has and batch_stats is not False:
        if batch_stats:
            raise TypeError("`batch_stats=True` needs an NNX model (Linen has no train switch)")
        warnings.warn(
            "the Linen model's `batch_stats` stay fixed during training (inference mode): "
            "visjax.zoo.train updates batch statistics of NNX models only",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    if batch_stats and not has:
        raise ValueError("`batch_stats=True` but the model has no batch statistics")
    return has if batch_stats is None else batch_stats


def _train_batch_stats(
    model, train_data, opt, epochs, batch_size, seed, test_data, callback, writer, show
):
    """:func:`train` in training mode: each step also carries the updated batch statistics."""

    @jax.jit
    def step(params, state, opt_state, model, x, y):
        grad_fn = jax.value_and_grad(_loss_train_mode, has_aux=True)
        (loss, (logits, state)), grads = grad_fn(params, state, model, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        acc = (logits.argmax(-1) == y).mean()
        return optax.apply_updates(params, updates), state, opt_state, loss, acc

    rng = np.random.default_rng(seed)
    params, state, opt_state = model.params, model.state, opt.init(model.params)
    x_all, y_all = np.asarray(train_data.x), np.asarray(train_data.y)
    n = len(x_all)
    history = History([], [], [], [])
    if writer is not None:
        writer.save(0, params)
    with progress_bar(epochs, desc="training", unit="epoch", enabled=show) as bar:
        for epoch in range(epochs):
            order = rng.permutation(n)
            losses, accs = [], []
            for start in range(0, n - batch_size + 1, batch_size):
                idx = order[start : start + batch_size]
                params, state, opt_state, loss, acc = step(
                    params, state, opt_state, model, x_all[idx], y_all[idx]
                )
                losses.append(loss)
                accs.append(acc)
            _record(history, losses, accs, epoch)
            trained = model.replace(params=params, state=state)
            if test_data is not None:
                test_loss, test_acc = evaluate(trained, test_data)
                history.test_loss.append(test_loss)
                history.test_accuracy.append(test_acc)
            if writer is not None:
                writer.save(epoch + 1, params)
            bar.update(1)
            postfix = {"loss": f"{history.train_loss[-1]:.3f}"}
            if history.test_accuracy:
                postfix["test_acc"] = f"{history.test_accuracy[-1]:.3f}"
            bar.set_postfix(postfix)
            if callback is not None:
                callback(epoch, history)
    return model.replace(params=params, state=state), history


def _record(history: History, losses: list, accs: list, epoch: int) -> None:
    """Append an epoch's mean train loss and accuracy; raise if the loss is not finite."""
    history.train_loss.append(float(np.mean(jax.device_get(losses))))
    history.train_accuracy.append(float(np.mean(jax.device_get(accs))))
    if not np.isfinite(history.train_loss[-1]):
        raise FloatingPointError(f"training diverged at epoch {epoch}: loss is not finite")
