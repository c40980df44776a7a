"""Progress bars and log lines that do not overprint them.

Every call driven from Python that can take more than a few seconds takes
``progress: bool | str = "auto"``: ``"auto"`` shows a bar when standard error is a terminal,
``True``/``False`` force it. :func:`resolve_progress` checks and resolves that argument,
:func:`progress_bar` makes the bar (tqdm, imported only when a bar is shown: ``tqdm.auto`` costs
0.1-0.2 s) or a no-op stand-in with the same methods, and :func:`log` writes a line through
``tqdm.write`` while a bar is open so the line never lands in the middle of the bar.
"""

from __future__ import annotations

import sys
from typing import IO, Any

__all__ = ["NoBar", "log", "progress_bar", "resolve_progress"]


def resolve_progress(progress: bool | str, *, name: str = "progress") -> bool:
    """Whether to show a progress bar for ``progress``.

    Args:
      progress: ``True``/``False`` force the bar on/off; ``"auto"`` shows it when standard
        error is a terminal.
      name: the argument's name in the error message.

    Returns:
      ``True`` when a bar should be shown.

    Raises:
      ValueError: naming ``name`` unless ``progress`` is a bool or ``"auto"``.
    """
    if isinstance(progress, bool):
        return progress
    if isinstance(progress, str) and progress == "auto":
        stream = sys.stderr
        try:
            return bool(stream is not None and stream.isatty())
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            return False
    raise ValueError(f"`{name}` must be True, False or 'auto', got {progress!r}")


class NoBar:
    """A progress bar that shows nothing: the subset of tqdm's API that visjax uses."""

    def __init__(self, total: int | None = None) -> None:
        self.total = total
        self.n = 0

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps done."""
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        """Ignored (tqdm shows these values after the bar)."""

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        """Ignored (tqdm shows ``desc`` before the bar)."""

    def write(self, s: str, file: IO[str] | None = None, end: str = "\n") -> None:
        """Write ``s`` (as :func:`log` does)."""
        log(s, file=file, end=end)

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(
    total: int | None,
    *,
    desc: str | None = None,
    unit: str = "it",
    enabled: bool = True,
    leave: bool | None = None,
) -> Any:
    """A tqdm bar over ``total`` steps when ``enabled``, else a :class:`NoBar`.

    Args:
      total: the number of steps (``None`` when unknown).
      desc: the label shown before the bar.
      unit: what one step is (``"epoch"``, ``"point"``, ...).
      enabled: whether to show a bar (pass ``resolve_progress(progress)``).
      leave: keep the finished bar on screen (``None``: only an outermost bar, not one
        nested in another).

    Returns:
      An object with ``update``, ``set_postfix``, ``set_description``, ``write`` and ``close``
      (and usable as a context manager): a ``tqdm.auto.tqdm`` or a :class:`NoBar`.
    """
    if not enabled:
        return NoBar(total)
    from tqdm.auto import tqdm  # noqa: PLC0415 - tqdm.auto (0.1-0.2 s), only with a bar

    return tqdm(total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr)


def _bar_open() -> bool:
    tqdm_mod = sys.modules.get("tqdm")
    if tqdm_mod is None:  # no bar was ever made
        return False
    instances = getattr(tqdm_mod.tqdm, "_instances", None)
    return bool(instances)


def log(message: str, file: IO[str] | None = None, end: str = "\n") -> None:
    """Write a log line; through ``tqdm.write`` while a bar is open, so it never overprints it.

    Args:
      message: the line (without its newline).
      file: where to write (standard output when ``None``, as ``print``; bars are on standard
        error).
      end: appended after ``message``.
    """
    if _bar_open():
        from tqdm import tqdm  # noqa: PLC0415 - only loaded when a bar exists

        tqdm.write(message, file=sys.stdout if file is None else file, end=end)
        return
    stream = sys.stdout if file is None else file
    stream.write(message + end)
    stream.flush()
