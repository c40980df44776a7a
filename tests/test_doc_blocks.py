"""Every ```python block of README.md and docs/**/*.md runs as written.

The blocks of one page run in order in one namespace (a page reads as one session), with the
current directory a temporary folder and matplotlib's Agg backend. Blocks that only include a
snippet (``--8<-- "examples/....py"``) are skipped: tests/test_examples.py runs the examples.
Pages are collected as they exist, so a new guide page is tested without editing this file.
"""

from __future__ import annotations

import re
import textwrap
import traceback
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
SNIPPET = re.compile(r"^\s*-{1,2}8<-{1,2}\s")


def pages() -> list[Path]:
    """README.md and every Markdown page under docs/, in a stable order."""
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [p for p in found if p.is_file()]


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of each ```python block that is not only a snippet include."""
    blocks = []
    for m in FENCE.finditer(text):
        code = textwrap.dedent(m["body"])
        lines = [line for line in code.splitlines() if line.strip()]
        if lines and all(SNIPPET.match(line) for line in lines):
            continue
        blocks.append((text.count("\n", 0, m.start()) + 1, code))
    return blocks


def test_python_blocks_found():
    text = 'a\n```python\nx = 1\n```\n\n```python\n--8<-- "examples/a.py"\n```\n'
    text += "  ```python\n  y = x\n  ```\n```\nnot python\n```\n"
    assert python_blocks(text) == [(2, "x = 1\n"), (9, "y = x\n")]


@pytest.mark.slow
@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_blocks_run(page, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = python_blocks(page.read_text(encoding="utf-8"))
    if not blocks:
        pytest.skip("no python blocks")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__doc_block__"}
    name = page.relative_to(ROOT).as_posix()
    try:
        for number, (line, code) in enumerate(blocks, start=1):
            try:
                exec(compile(code, f"{name}:{line}", "exec"), namespace)
            except Exception:
                head = "\n".join(code.splitlines()[:6])
                pytest.fail(
                    f"{name}: python block {number} of {len(blocks)} (line {line}) failed:\n"
                    f"{textwrap.indent(head, '    ')}\n    ...\n{traceback.format_exc()}",
                    pytrace=False,
                )
    finally:
        plt.close("all")
