"""What the demo's sections share during one run: :class:`DemoContext`."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from visjax.zoo.cache import Trained
from visjax.zoo.pretrained import trained_digits_cnn


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
