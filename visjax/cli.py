"""The ``visjax`` command line: argument parsing only; the runners live in :mod:`visjax.report`.

``visjax demo`` calls :func:`visjax.report.demo.run_demo`, ``visjax landscape`` calls
:func:`visjax.report.sweep.run_landscape`; ``visjax --version`` prints :func:`version`. The help
lists the report's sections and the zoo models from their registries (imported for ``--help``
only).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from importlib import metadata

import visjax

# The runners are imported in `main`, after parsing: they import JAX, matplotlib and every method
# package (about 5 s on 2 cores), which `visjax --help` and argument errors need not wait for.


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (argparse names the option in its error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _batch_size(text: str) -> int | str:
    """An argparse type: ``auto`` or an integer >= 1."""
    if text == "auto":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer or 'auto', got {text!r}"
        ) from None


def _positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (0 < value < math.inf):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


# The weight cache's default folder, as visjax.zoo.cache resolves it (tests/test_cli.py checks it).
CACHE_DEFAULT = "$VISJAX_CACHE if set, else $XDG_CACHE_HOME/visjax, else ~/.cache/visjax"


def version() -> str:
    """visjax's version: the installed distribution's, else the package's ``__version__``."""
    try:
        return metadata.version("visjax")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return visjax.__version__


def _log(msg: str) -> None:
    from visjax.base.progress import log  # noqa: PLC0415 - through tqdm.write while a bar is open

    log(f"[visjax] {msg}")


def _parser(
    sections: Sequence[str] | None = None, models: Sequence[str] | None = None
) -> argparse.ArgumentParser:
    """The argument parser.

    Args:
      sections: the report's section names (:func:`visjax.report.demo.section_names`), listed in
        ``demo --help``; ``None`` leaves them out (parsing does not need them).
      models: the zoo models ``landscape`` sweeps (:data:`visjax.report.sweep.ZOO_MODELS`), listed
        in ``landscape --help``.
    """
    parser = argparse.ArgumentParser(
        prog="visjax", description="visjax: look inside neural networks, in JAX."
    )
    parser.add_argument("--version", action="version", version=f"visjax {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "demo",
        help="train the zoo's models and write report.html with every method's figures",
        description="Train the zoo's models (the digits CNN on scikit-learn's digits, CNNs on "
        "generated images; once: the weights are cached in --cache) and write into --out: "
        "report.html (a table of contents, one section per capability with its figures, their "
        "captions and how to read them, and at the end the run's settings and the seconds each "
        "section took), the figures as PNG files beside it, summary.txt (the model's layer "
        "table), gradstats_cnn.csv (per-layer gradient statistics) and landscape/ (the sweep's "
        "landscape.npz, ParaView .vtp files, plots and finished blocks). A section that fails "
        "is shown in the report with its traceback, the other sections still run, and the "
        "command exits with status 1 after writing the report.",
    )
    p.add_argument("--out", default="out/demo", help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="short runs: fewer epochs, steps and grid points (the digits CNN trains 15 epochs "
        "instead of 30)",
    )
    listed = f"; sections, in report order: {', '.join(sections)}" if sections else ""
    p.add_argument(
        "--sections",
        default=None,
        metavar="NAMES",
        help=f"comma-separated report sections to run (default: all){listed}",
    )
    p.add_argument("--cache", default=None, help=f"weight cache folder (default: {CACHE_DEFAULT})")
    q = sub.add_parser(
        "landscape",
        help="sweep the loss landscape of a trained zoo model",
        description="Train (once; cached) a zoo model on the digits, then sweep its training "
        "loss along the line from initial to trained weights and on a random plane around the "
        "trained weights, sharded over all devices. Writes landscape.npz, ParaView .vtp files "
        "and PNG plots into --out; finished blocks go to OUT/sweep, and an interrupted run "
        "resumes from them.",
    )
    listed = f": {', '.join(models)}" if models else ""
    q.add_argument(
        "--model", default="digits_cnn", help=f"zoo model (default: %(default)s){listed}"
    )
    q.add_argument("--out", default="out/landscape", help="output folder (default: %(default)s)")
    q.add_argument(
        "--resolution",
        type=_positive_int,
        default=21,
        help="grid points per axis (default: %(default)s)",
    )
    q.add_argument(
        "--span",
        type=_positive_float,
        default=1.0,
        help="plane range [-span, span] (default: %(default)s)",
    )
    q.add_argument(
        "--metrics",
        default="cross_entropy,accuracy",
        help="comma-separated: cross_entropy, mse, accuracy (default: cross_entropy,accuracy)",
    )
    q.add_argument(
        "--normalization",
        default="filter",
        choices=["filter", "layer", "model", "none"],
        help="direction normalisation (Li et al. 2018; default: %(default)s)",
    )
    q.add_argument(
        "--batch-size",
        type=_batch_size,
        default="auto",
        help="data examples per chunk, or auto: chosen from the backend and the model "
        "(default: auto)",
    )
    q.add_argument(
        "--strategy",
        default="auto",
        choices=["auto", "map", "vmap", "loop"],
        help="how grid points run (default: map on CPU, vmap on accelerators)",
    )
    q.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    q.add_argument("--cache", default=None, help=f"weight cache folder (default: {CACHE_DEFAULT})")
    q.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="delete the finished blocks in OUT/sweep and start over (default: resume from them)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``visjax`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    names = models = None
    if argv[:1] == ["demo"] and {"-h", "--help"} & set(argv[1:]):
        # Only `visjax demo --help` pays for importing the sections, to list their names.
        from visjax.report.demo import section_names  # noqa: PLC0415 - heavy: help only

        names = section_names()
    if argv[:1] == ["landscape"] and {"-h", "--help"} & set(argv[1:]):
        from visjax.report.sweep import ZOO_MODELS  # noqa: PLC0415 - heavy: help only

        models = ZOO_MODELS
    args = _parser(names, models).parse_args(argv)
    if args.command == "demo":
        from visjax.report.demo import SectionError, run_demo  # noqa: PLC0415 - heavy: parse first

        sections = None if args.sections is None else [s for s in args.sections.split(",") if s]
        try:
            run_demo(
                args.out,
                seed=args.seed,
                quick=args.quick,
                sections=sections,
                cache=args.cache,
                log=_log,
            )
        except SectionError as e:
            print(f"visjax demo: error: {e}", file=sys.stderr)
            return 1
        except (ValueError, OSError) as e:
            print(f"visjax demo: error: {e}", file=sys.stderr)
            return 2
    if args.command == "landscape":
        from visjax.report.sweep import run_landscape  # noqa: PLC0415 - heavy: parse first

        try:
            run_landscape(
                args.out,
                model=args.model,
                seed=args.seed,
                cache=args.cache,
                resolution=args.resolution,
                span=args.span,
                metrics=tuple(m for m in args.metrics.split(",") if m),
                normalization=None if args.normalization == "none" else args.normalization,
                batch_size=args.batch_size,
                strategy=args.strategy,
                resume=args.resume,
                log=_log,
            )
        except (ValueError, OSError) as e:
            print(f"visjax landscape: error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
