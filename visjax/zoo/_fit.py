"""Training a zoo model with Adam once and caching it: what every ``trained_*`` function shares."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import optax

from visjax.model import Model
from visjax.zoo.cache import Trained, load_or_train
from visjax.zoo.data import Split
from visjax.zoo.train import History, train


def trained_with_adam(
    name: str,
    like: Model,
    load_data: Callable[[], tuple[Split, Split]],
    settings: Mapping[str, Any],
    *,
    seed: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    cache: str | os.PathLike | None,
    callback: Callable[[int, History], None] | None,
    schedule: str = "constant",
) -> Trained:
    """``like`` trained with Adam on ``load_data()``'s ``(train, test)`` splits, cached.

    The cache key is ``{"model": name, **settings, "seed", "epochs", "batch_size",
    "optimizer": "adam", "learning_rate"}`` (``settings`` names the data and any model settings),
    plus ``"schedule"`` when it is not constant. The data are loaded only when training.

    Args:
      name: the model's name (the cache entry's prefix and ``"model"`` in its key).
      like: the model to train from (its weights) and to load cached weights into.
      load_data: returns the ``(train, test)`` splits.
      settings: the rest of the cache key (JSON-serialisable).
      seed: seed of the shuffling (and, by the caller, of ``like``'s weights).
      epochs, batch_size, learning_rate: training settings.
      cache: the cache folder (default :func:`visjax.zoo.cache.cache_dir`).
      callback: progress callback passed to :func:`visjax.zoo.train`.
      schedule: ``"constant"`` or ``"cosine"`` (cosine decay of the learning rate to 0 over all
        steps).

    Returns:
      ``Trained(model, history, from_cache)``.
    """
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"`schedule` must be 'constant' or 'cosine', got {schedule!r}")
    config = {
        "model": name,
        **settings,
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": "adam",
        "learning_rate": learning_rate,
        **({} if schedule == "constant" else {"schedule": schedule}),
    }

    def fit():
        train_split, test_split = load_data()
        lr = learning_rate
        if schedule == "cosine":
            lr = optax.cosine_decay_schedule(
                learning_rate, epochs * (len(train_split.x) // batch_size)
            )
        return train(
            like,
            train_split,
            epochs=epochs,
            batch_size=batch_size,
            optimizer=optax.adam(lr),
            seed=seed,
            test_data=test_split,
            callback=callback,
        )

    return load_or_train(name, config, fit, like=like, cache=cache)
