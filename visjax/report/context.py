"""What a report's sections share during one run: :class:`ReportContext` and :class:`DemoContext`.

A section is a function ``build(ctx) -> Section``. It reads the model to explain, its data and its
training history through the generic names ``ctx.model``, ``ctx.train``, ``ctx.test``,
``ctx.num_classes`` and ``ctx.history``, and writes its figures into ``ctx.out``. A
:class:`ReportContext` holds a user's own model and data (:func:`visjax.report.write`); a
:class:`DemoContext` derives them from the digits CNN (``visjax demo``) and adds what only the demo
has (``ctx.digits_cnn``, the zoo's other models).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from pathlib import Path

from visjax.base.progress import log as log_line
from visjax.model import Model
from visjax.zoo import Digits, Split, load_digits
from visjax.zoo.cache import Trained
from visjax.zoo.pretrained import trained_digits_cnn
from visjax.zoo.train import History


class SkipSection(Exception):  # a signal, not an error
    """Raised by a section's builder when it does not apply to the run (the reason as message).

    The runner logs the reason and lists the section as skipped in the report's timings.
    """


class ReportContext:
    """What sections share during one report run: a model, its data, options, the output folder.

    Attributes:
      out: the output folder (figures go here).
      model: the model to explain (a :class:`visjax.Model`).
      train: training data ``(x, y)`` (a :class:`visjax.zoo.Split`): images NHWC float32,
        integer labels.
      test: held-out data ``(x, y)``.
      num_classes: number of classes.
      history: the training history (:class:`visjax.zoo.History`), or None.
      seed: the run's seed.
      quick: a short run (tests): each section should stay within about 10 s.
      cache: the weight cache folder (None: ``$VISJAX_CACHE`` or the user's cache directory).
      log: where log lines go (default :func:`visjax.base.progress.log`: standard output,
        through ``tqdm.write`` while a progress bar is open, so no line overprints a bar).
      demo: whether the demo's own models exist (``False`` here: demo-only sections are skipped).
    """

    demo: bool = False

    def __init__(
        self,
        out: str | os.PathLike,
        *,
        model: Model,
        train: Split,
        test: Split,
        num_classes: int,
        history: History | None = None,
        seed: int = 0,
        quick: bool = False,
        cache: str | os.PathLike | None = None,
        log: Callable[[str], None] = log_line,
    ):
        self.out = Path(out)
        self._model, self._train, self._test = model, Split(*train), Split(*test)
        self._num_classes, self._history = int(num_classes), history
        self.seed, self.quick, self.cache, self.log = seed, quick, cache, log

    @property
    def model(self) -> Model:
        """The model the sections look at."""
        return self._model

    @property
    def train(self) -> Split:
        """Training data ``(x, y)``: images NHWC float32, integer labels."""
        return self._train

    @property
    def test(self) -> Split:
        """Held-out data ``(x, y)``."""
        return self._test

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return self._num_classes

    @property
    def history(self) -> History | None:
        """The training history, when there is one."""
        return self._history

    @property
    def training_note(self) -> str:
        """How the model was trained, in words, for the training section (empty if unknown)."""
        return ""


@dataclasses.dataclass
class DemoContext(ReportContext):
    """What sections share during one demo run: the digits CNN and the digits.

    Attributes:
      out: the output folder (figures go here).
      seed: the run's seed.
      quick: a short run (tests): each section should stay within about 10 s.
      cache: the weight cache folder (None: ``$VISJAX_CACHE`` or the user's cache directory).
      log: where log lines go (default :func:`visjax.base.progress.log`: standard output,
        through ``tqdm.write`` while a progress bar is open, so no line overprints a bar).
    """

    out: Path
    seed: int = 0
    quick: bool = False
    cache: str | os.PathLike | None = None
    log: Callable[[str], None] = log_line
    demo = True  # a class attribute (no annotation): not a dataclass field

    @functools.cached_property
    def digits_cnn(self) -> Trained:
        """The digits CNN (NNX) trained on the digits (15 epochs if quick, else 30), cached."""
        epochs = 15 if self.quick else 30
        # visjax.zoo.train shows its bar over the epochs (on a terminal); a cache hit shows none
        result = trained_digits_cnn(seed=self.seed, epochs=epochs, cache=self.cache)
        source = "loaded from the cache" if result.from_cache else f"trained for {epochs} epochs"
        self.log(f"digits CNN {source}: test accuracy {result.history.test_accuracy[-1]:.2%}")
        return result

    @property
    def model(self) -> Model:
        """The model the sections look at: the trained digits CNN."""
        return self.digits_cnn.model

    @functools.cached_property
    def _digits(self) -> Digits:
        return load_digits()

    @property
    def train(self) -> Split:
        """Training data ``(x, y)``: the digits' 1,347 training images."""
        return self._digits.train

    @property
    def test(self) -> Split:
        """Held-out data ``(x, y)``: the digits' 450 test images."""
        return self._digits.test

    @property
    def num_classes(self) -> int:
        """Number of classes (10)."""
        return self._digits.num_classes

    @property
    def history(self) -> History | None:
        """The digits CNN's training history."""
        return self.digits_cnn.history

    @property
    def training_note(self) -> str:
        """The digits CNN's training settings."""
        cached = " (weights from the cache)" if self.digits_cnn.from_cache else ""
        return f"Adam (lr 1e-2), batch 64, seed {self.seed}{cached}."
