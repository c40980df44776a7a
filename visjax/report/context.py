"""What the demo's sections share during one run: :class:`DemoContext`."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from visjax.model import Model
from visjax.zoo import Digits, Split, load_digits
from visjax.zoo.cache import Trained
from visjax.zoo.pretrained import trained_digits_cnn
from visjax.zoo.train import History


@dataclasses.dataclass
class DemoContext:
    """What sections share during one demo run.

    Attributes:
      out: the output folder (figures go here).
      seed: the run's seed.
      quick: a short run (tests): each section should stay within about 10 s.
      cache: the weight cache folder (None: ``$VISJAX_CACHE`` or the user's cache directory).
      log: where progress lines go.
    """

    out: Path
    seed: int = 0
    quick: bool = False
    cache: str | os.PathLike | None = None
    log: Callable[[str], None] = print

    @functools.cached_property
    def digits_cnn(self) -> Trained:
        """The digits CNN (NNX) trained on the digits (15 epochs if quick, else 30), cached."""
        epochs = 15 if self.quick else 30
        bars = []  # opened on the first epoch: a cache hit shows no bar

        def progress(epoch, history):
            if not bars:
                bars.append(tqdm(total=epochs, desc="training digits CNN", unit="epoch"))
            bars[0].update(1)
            bars[0].set_postfix(test_acc=f"{history.test_accuracy[-1]:.3f}")

        try:
            result = trained_digits_cnn(
                seed=self.seed, epochs=epochs, cache=self.cache, callback=progress
            )
        finally:
            for bar in bars:
                bar.close()
        source = "loaded from the cache" if result.from_cache else f"trained for {epochs} epochs"
        self.log(f"digits CNN {source}: test accuracy {result.history.test_accuracy[-1]:.2%}")
        return result

    # The generic names sections use (a user's report passes its own; see issue 28): the model
    # to explain, its data and its training history.
    @property
    def model(self) -> Model:
        """The model the sections look at (the demo: the trained digits CNN)."""
        return self.digits_cnn.model

    @functools.cached_property
    def _digits(self) -> Digits:
        return load_digits()

    @property
    def train(self) -> Split:
        """Training data ``(x, y)``: images NHWC float32, integer labels."""
        return self._digits.train

    @property
    def test(self) -> Split:
        """Held-out data ``(x, y)``."""
        return self._digits.test

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return self._digits.num_classes

    @property
    def history(self) -> History | None:
        """The training history, when there is one."""
        return self.digits_cnn.history
