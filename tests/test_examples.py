"""Every examples/*.py runs at its small size and writes non-empty PNG figures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parent.parent
# The six heaviest (8-14 s each at their small size on 2 cores; embed trains the digits CNN once)
# run in `make test-slow` (CI runs both); the others keep `make test` under 6 minutes.
SLOW = {
    "attribution",
    "cams",
    "curvature",
    "embed",
    "featviz",
    "gradstats",
    "inspection",
    "landscape",
    "perturbation",
}
EXAMPLES = [
    pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in SLOW else [])
    for p in sorted((ROOT / "examples").glob("*.py"))
    if not p.stem.startswith("_")  # _common.py: the examples' shared helpers, not an example
]
PNG = b"\x89PNG\r\n\x1a\n"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"visjax_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", EXAMPLES)
def test_example_runs_small(path, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.syspath_prepend(str(path.parent))  # `from _common import ...`, as when run
    import matplotlib.pyplot as plt

    try:
        paths = _load(path).main(tmp_path, small=True)
    finally:
        plt.close("all")
    assert paths, f"{path.name}: main returned no figures"
    for p in map(Path, paths):
        assert p.is_file(), f"{path.name}: {p} was not written"
        data = p.read_bytes()
        assert len(data) > len(PNG) and data.startswith(PNG), f"{path.name}: {p} is not a PNG"
