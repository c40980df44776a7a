"""The ``visjax`` command line: ``visjax demo`` (and, later, landscape sweeps and reports)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def _log(msg: str) -> None:
    print(f"[visjax] {msg}", flush=True)


def demo(out: str | Path, *, seed: int = 0, quick: bool = False) -> Path:
    """Train the digits CNN and write a summary, a training-curve PNG and ``report.html``.

    Args:
      out: the output folder (created if missing).
      seed: seed for the initial weights and the shuffling.
      quick: train for 15 epochs instead of 30 (tests use it).

    Returns:
      The path of ``report.html``.
    """
    import jax.numpy as jnp

    from visjax.inspect import summary
    from visjax.io import atomic_write_text, save_figure
    from visjax.plot import Section, training_curves, write_report
    from visjax.zoo import digits_cnn, load_digits, train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    _log("loading scikit-learn digits")
    data = load_digits()
    _log(f"{len(data.train.x)} training and {len(data.test.x)} test images of shape 8x8x1")
    epochs = 15 if quick else 30
    model = digits_cnn("nnx", seed=seed)

    def progress(epoch: int, h) -> None:
        if (epoch + 1) % 5 == 0 or epoch + 1 == epochs:
            _log(
                f"epoch {epoch + 1:>3}/{epochs}: train loss {h.train_loss[-1]:.4f}, "
                f"test accuracy {h.test_accuracy[-1]:.2%}"
            )

    _log(f"training the digits CNN (NNX) for {epochs} epochs, seed {seed}")
    model, history = train(
        model, data.train, epochs=epochs, seed=seed, test_data=data.test, callback=progress
    )
    table = summary(model, jnp.zeros((1, 8, 8, 1), jnp.float32)).to_text()
    atomic_write_text(out / "summary.txt", table + "\n")
    curve = save_figure(training_curves(history, title="digits CNN"), out / "training_curves.png")
    _log(f"wrote {out / 'summary.txt'} and {curve}")
    report = write_report(
        out / "report.html",
        [
            Section(
                "Model",
                "The digits CNN as a Flax NNX module, seen through visjax's model interface: "
                "layer paths, activation shapes for one example, parameter counts.",
                preformatted=[table],
            ),
            Section(
                "Training",
                f"Adam (lr 1e-2), batch 64, {epochs} epochs, seed {seed}. Final test accuracy "
                f"{history.test_accuracy[-1]:.2%} on 450 held-out digits.",
                figures=[curve],
            ),
        ],
        title="visjax demo: digits CNN",
    )
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
    p.add_argument("--quick", action="store_true", help="shorter training, for tests")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``visjax`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        demo(args.out, seed=args.seed, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
