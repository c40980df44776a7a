"""What the examples share: the output folder, saving figures, an in-memory trajectory, the CLI.

Each example defines ``main(out="out/examples/NAME", small=False) -> list[Path]`` and ends with
``cli(main, __doc__, "...")``; run one as ``python examples/NAME.py [--out FOLDER] [--small]``.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt


def out_dir(out: str | Path) -> Path:
    """The output folder ``out`` as a Path, created if missing."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def save(fig, path: str | Path, **savefig_kw) -> Path:
    """Save ``fig`` to ``path`` (``savefig_kw``: as ``Figure.savefig``), close it; ``path``."""
    fig.savefig(path, **savefig_kw)
    plt.close(fig)
    return Path(path)


def save_all(figures: Mapping[str, Any], out: Path, prefix: str, **savefig_kw) -> list[Path]:
    """Save each ``figures[name]`` as ``out / f"{prefix}{name}.png"`` (``dpi=80``, tight bounding
    box unless ``savefig_kw`` says otherwise) and close it; the paths, in order."""
    savefig_kw = {"dpi": 80, "bbox_inches": "tight", **savefig_kw}
    return [save(fig, out / f"{prefix}{name}.png", **savefig_kw) for name, fig in figures.items()]


class KeepCheckpoints:
    """A trajectory writer that keeps the parameters in memory (vl.TrajectoryWriter: on disk)."""

    def __init__(self):
        self.params = []

    def save(self, step, params):
        self.params.append(params)


def cli(
    main: Callable[..., list[Path]],
    doc: str,
    small_help: str,
    out_help: str = "folder for the PNGs",
) -> None:
    """Parse ``--out`` (default: ``main``'s) and ``--small``, run ``main``, print its paths."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    default = inspect.signature(main).parameters["out"].default
    parser.add_argument("--out", default=default, help=out_help)
    parser.add_argument("--small", action="store_true", help=small_help)
    args = parser.parse_args()
    for path in main(args.out, small=args.small):
        print(path)
