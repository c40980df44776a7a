"""A static HTML report that gathers a run's figures and tables."""

from __future__ import annotations

import datetime
import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from visjax.base.io import atomic_write_text


class Section(NamedTuple):
    """One report section: a title, a short text, figures (paths) and preformatted blocks."""

    title: str
    text: str = ""
    figures: Sequence[str | os.PathLike] = ()
    preformatted: Sequence[str] = ()


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; color: #222; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
section { margin: 2em 0; }
figure { margin: 1em 0; } img { max-width: 100%; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; }
.meta { color: #666; font-size: .9em; }
"""


def write_report(
    path: str | os.PathLike, sections: Sequence[Section], *, title: str = "visjax report"
) -> Path:
    """Write ``report.html`` (atomically) with the given sections.

    Figures are linked by paths relative to the report's folder, so the folder can be moved or
    archived as a whole. Text is HTML-escaped.

    Args:
      path: the HTML file to write.
      sections: the sections, in order.
      title: the page title.

    Returns:
      The path written.
    """
    path = Path(path)
    body = []
    for sec in sections:
        parts = [f"<section><h2>{html.escape(sec.title)}</h2>"]
        if sec.text:
            parts.append(f"<p>{html.escape(sec.text)}</p>")
        for block in sec.preformatted:
            parts.append(f"<pre>{html.escape(block)}</pre>")
        for fig in sec.figures:
            rel = os.path.relpath(Path(fig).resolve(), path.parent.resolve())
            parts.append(
                f'<figure><img src="{html.escape(rel)}" alt="{html.escape(Path(fig).stem)}">'
                "</figure>"
            )
        parts.append("</section>")
        body.append("\n".join(parts))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='meta'>written {stamp}</p>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    return atomic_write_text(path, page)
