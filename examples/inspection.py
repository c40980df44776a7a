"""Look at the model first: summary, graph, activation statistics, dead units, weight change.

Run: ``python examples/inspection.py [--out FOLDER] [--small]`` (named so that it does not
shadow the standard library's ``inspect`` when run as a script).
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
from _common import cli, out_dir, save

from visjax import inspect as vi
from visjax import plot
from visjax.zoo import digits_cnn, load_digits
from visjax.zoo.pretrained import trained_digits_cnn


def main(out: str | Path = "out/examples/inspect", small: bool = False) -> list[Path]:
    out = out_dir(out)
    before = digits_cnn(seed=0)  # the initial weights the trained model started from
    model = trained_digits_cnn(seed=0).model  # trained once, then loaded from the weight cache
    data = load_digits()
    x = jnp.asarray(data.train.x[:256] if small else data.train.x)  # 1,347 training digits

    # the layer table (shapes, parameters, FLOPs per example) and the architecture graph
    print(vi.summary(model, x[:1]).to_text())
    (out / "inspect-graph.svg").write_text(vi.graph(model, x[:1]).to_svg())

    # per-unit statistics over the dataset in one compiled pass, and the units that never fire
    stats = vi.activation_stats(model, x, layers=["conv1", "conv2", "fc"], histogram="layer")
    for layer, units in vi.dead_units(stats).items():
        print(f"{layer}: {len(units)} dead of {stats[layer].units} units {units.tolist()}")

    # the same neurons before and after training
    change = vi.weight_change(before, model)

    paths = [out / f"inspect-{name}.png" for name in ("activations", "histograms", "change")]
    figs = [
        plot.activation_fractions({k: s.active for k, s in stats.items()}),
        plot.activation_histograms(
            {k: s.counts for k, s in stats.items()}, {k: s.edges for k, s in stats.items()}
        ),
        plot.weight_changes(
            {k: c.relative_change for k, c in change.items()},
            {k: c.counts_a for k, c in change.items()},
            {k: c.counts_b for k, c in change.items()},
            {k: c.edges for k, c in change.items()},
            labels=("initial", "trained"),
        ),
    ]
    for fig, path in zip(figs, paths, strict=True):
        save(fig, path, dpi=80)
    return paths


if __name__ == "__main__":
    cli(main, __doc__, "256 digits instead of 1,347")
