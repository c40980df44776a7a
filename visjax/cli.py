"""The ``visjax`` command line: ``visjax demo`` (and, later, landscape sweeps and reports)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def _log(msg: str) -> None:
    print(f"[visjax] {msg}", flush=True)


def demo(
    out: str | Path,
    *,
    seed: int = 0,
    quick: bool = False,
    sections: Sequence[str] | None = None,
    cache: str | Path | None = None,
) -> Path:
    """Run the registered report sections and write ``report.html`` into ``out``.

    The built-in sections train the digits CNN (once; the weights are cached) and write a model
    summary and training curves; each capability adds its own section
    (:mod:`visjax.sections`).

    Args:
      out: the output folder (created if missing).
      seed: seed for the initial weights and the shuffling.
      quick: short runs (tests use it): 15 training epochs, each section within about 10 s.
      sections: names of the sections to run (default: all registered).
      cache: the weight cache folder (default ``$VISJAX_CACHE`` or the user's cache directory).

    Returns:
      The path of ``report.html``.

    Raises:
      ValueError: an unknown section name (the message lists the known ones).
    """
    from tqdm.auto import tqdm

    from visjax.plot import write_report
    from visjax.sections import DemoContext, select_sections

    chosen = select_sections(sections)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(out=out, seed=seed, quick=quick, cache=cache, log=_log)
    t0 = time.perf_counter()
    built = []
    for spec in tqdm(chosen, desc="report sections", unit="section", leave=False):
        t = time.perf_counter()
        built.append(spec.build(ctx))
        _log(f"section {spec.name!r} done in {time.perf_counter() - t:.1f} s")
    report = write_report(out / "report.html", built, title="visjax demo")
    _log(f"wrote {report} in {time.perf_counter() - t0:.1f} s")
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visjax", description="visjax: look inside neural networks, in JAX."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "demo",
        help="train the digits CNN and write figures and report.html",
        description="Train the digits CNN on scikit-learn's digits and write a model summary, "
        "a training-curve PNG and report.html into --out.",
    )
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--quick", action="store_true", help="short runs, for tests")
    p.add_argument(
        "--sections",
        default=None,
        help="comma-separated report sections to run (default: all; unknown names are listed)",
    )
    p.add_argument(
        "--cache", default=None, help="weight cache folder (default: $VISJAX_CACHE or ~/.cache)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``visjax`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        sections = None if args.sections is None else [s for s in args.sections.split(",") if s]
        try:
            demo(args.out, seed=args.seed, quick=args.quick, sections=sections, cache=args.cache)
        except (ValueError, OSError) as e:
            print(f"visjax demo: error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
