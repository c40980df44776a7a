"""benchmarks/accelerator.py's smoke pass runs on CPU in a fresh process and writes its table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # compiles ResNet-18/20 programs in a subprocess
def test_smoke_pass_on_cpu_writes_json_and_markdown(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "accelerator.py"),
            "--smoke",
            "--out",
            str(tmp_path),
        ],
        cwd=tmp_path,  # the script finds visjax from its own location, not the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "accelerator.json").read_text())
    env_ = report["environment"]
    assert env_["platform"] == "cpu" and env_["versions"]["jax"] and env_["date"]
    assert report["interface"]["status"] == "ok"
    results = report["results"]
    cases = {"ig", "plane_digits_small", "plane_digits_large", "plane_resnet_small"}
    cases |= {"plane_resnet_large", "hessian", "featviz", "tsne"}
    assert {r["case"] for r in results} == cases
    assert all(r["mode"] == "smoke" and r["status"] == "ok" for r in results), results
    assert all(r["first_s"] > 0 for r in results)
    ig = next(r for r in results if r["case"] == "ig")
    assert ig["extra"]["floor"] == "skipped in this pass" and "captum" in ig["extra"]
    eig = next(r for r in results if r["case"] == "hessian")["extra"]["eigenvalues"]
    assert len(eig) == 5
    md = (tmp_path / "accelerator.md").read_text()
    assert "| mode | case | first call (s) | steady (s) | notes |" in md
    assert md.count("| smoke |") == len(cases) and "jax " in md


def test_a_failing_case_is_recorded_and_the_exit_status_is_non_zero(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import accelerator
    finally:
        sys.path.remove(str(ROOT))

    def boom(s):
        raise RuntimeError("no such kernel")

    monkeypatch.setattr(accelerator, "CASES", {"ig": boom, "tsne": lambda s: {"first_s": 1.0}})
    monkeypatch.setattr(accelerator, "interface_check", lambda: {})
    assert accelerator.main(["--smoke", "--out", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "accelerator.json").read_text())
    by_case = {r["case"]: r for r in report["results"]}
    assert by_case["ig"]["status"] == "failed" and "no such kernel" in by_case["ig"]["error"]
    assert by_case["tsne"]["status"] == "ok"
    assert "**failed**" in (tmp_path / "accelerator.md").read_text()


@pytest.mark.slow  # compiles IG and its floor on ResNet-18 (about 8 s)
def test_ig_floor_computes_the_same_attributions_as_ig():
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import accelerator
    finally:
        sys.path.remove(str(ROOT))
    sizes = dict(accelerator.SIZES["smoke"], ig_floor=True, runs=1)
    extra = accelerator.case_ig(sizes)["extra"]
    assert extra["floor_first_s"] > 0 and extra["floor_steady_s"] > 0
    # The same gradient passes, summed in another order: float32 reordering only.
    assert extra["floor_rel_diff"] < 1e-4
