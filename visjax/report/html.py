"""A static HTML report that gathers a run's figures and tables.

:func:`write_report` writes one self-contained ``report.html``: a table of contents linking to
each section's anchor, each section's text (how to read its figures), its preformatted blocks and
its figures (PNG files beside the report, linked by relative paths, each with a caption and alt
text), and at the end a "Run" section with the run's settings and the seconds each section took.
"""

from __future__ import annotations

import datetime
import html
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from visjax.base.io import atomic_write_text


class Figure(NamedTuple):
    """One figure of a section: an image file, its caption and its alt text.

    ``alt`` defaults to the caption (or, without one, to the section title and the file name in
    words).
    """

    path: str | os.PathLike
    caption: str = ""
    alt: str = ""


class Section(NamedTuple):
    """One report section.

    Attributes:
      title: the heading (also the table-of-contents entry).
      text: how to read the section's figures; paragraphs separated by a blank line.
      figures: image paths, ``(path, caption)`` pairs or :class:`Figure` entries.
      preformatted: blocks shown verbatim (tables as text).
      anchor: the section's ``id`` (default: derived from the title).
    """

    title: str
    text: str = ""
    figures: Sequence[str | os.PathLike | tuple[str | os.PathLike, str] | Figure] = ()
    preformatted: Sequence[str] = ()
    anchor: str = ""


class Timing(NamedTuple):
    """One line of the report's timings table: a section, its seconds and how it ended.

    ``status`` is ``"ok"``, ``"skipped: <reason>"`` or ``"failed: <error>"``.
    """

    section: str
    seconds: float
    status: str = "ok"


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; padding: 0 1em;
  color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #eee; padding-bottom: .2em; }
nav ol { columns: 2; }
section { margin: 2.5em 0; scroll-margin-top: 1em; }
figure { margin: 1.5em 0; } img { max-width: 100%; height: auto; }
figcaption { color: #444; font-size: .9em; margin-top: .3em; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; }
table { border-collapse: collapse; } td, th { padding: .2em .8em; border-bottom: 1px solid #eee;
  text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.meta, .top { color: #666; font-size: .9em; }
.failed { color: #b00020; }
"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _as_figure(fig, section_title: str) -> Figure:
    if isinstance(fig, Figure):
        f = fig
    elif isinstance(fig, tuple):
        f = Figure(*fig)
    else:
        f = Figure(fig)
    if not f.alt:
        words = Path(f.path).stem.replace("_", " ").replace("-", " ")
        f = f._replace(alt=f.caption or f"{section_title}: {words}")
    return f


def _paragraphs(text: str) -> list[str]:
    return [f"<p>{html.escape(p.strip())}</p>" for p in text.split("\n\n") if p.strip()]


def _run_section(
    settings: Mapping[str, object] | None, timings: Sequence[Timing] | None, anchor: str
) -> tuple[str, str]:
    parts = [f'<section id="{anchor}"><h2>Run</h2>']
    parts.append(
        "<p>The settings this report was built with, and the wall-clock seconds each section "
        "took (figures included; the first section to use a model also pays for training it "
        "or loading it from the cache).</p>"
    )
    if settings:
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in settings.items()
        )
        parts.append(f"<h3>Settings</h3><table>{rows}</table>")
    if timings:
        rows = []
        for t in timings:
            cls = ' class="failed"' if t.status.startswith("failed") else ""
            rows.append(
                f"<tr{cls}><td>{html.escape(t.section)}</td>"
                f'<td class="num">{t.seconds:.1f}</td><td>{html.escape(t.status)}</td></tr>'
            )
        total = sum(t.seconds for t in timings)
        rows.append(f'<tr><th>total</th><td class="num">{total:.1f}</td><td></td></tr>')
        parts.append(
            "<h3>Timings</h3><table><tr><th>section</th><th>seconds</th><th>status</th></tr>"
            + "".join(rows)
            + "</table>"
        )
    parts.append("</section>")
    return "Run", "\n".join(parts)


def write_report(
    path: str | os.PathLike,
    sections: Sequence[Section],
    *,
    title: str = "visjax report",
    settings: Mapping[str, object] | None = None,
    timings: Sequence[Timing] | None = None,
) -> Path:
    """Write ``report.html`` (atomically) with the given sections.

    Figures are linked by paths relative to the report's folder, so the folder can be moved or
    archived as a whole. Text is HTML-escaped. Each section gets an ``id`` (its ``anchor``, else
    one derived from its title; made unique) linked from the table of contents; each figure a
    ``<figcaption>`` (its caption, else none) and alt text. With ``settings`` or ``timings``, a
    last "Run" section (anchor ``run``) lists them.

    Args:
      path: the HTML file to write.
      sections: the sections, in order.
      title: the page title.
      settings: the run's settings (seed, versions, devices...), shown as a table.
      timings: seconds per section, shown as a table with a total.

    Returns:
      The path written.
    """
    path = Path(path)
    used: set[str] = set()
    toc, body = [], []

    def unique(anchor: str) -> str:
        base, n = anchor, 2
        while anchor in used:
            anchor, n = f"{base}-{n}", n + 1
        used.add(anchor)
        return anchor

    for sec in sections:
        anchor = unique(_slug(sec.anchor or sec.title))
        toc.append(f'<li><a href="#{anchor}">{html.escape(sec.title)}</a></li>')
        parts = [f'<section id="{anchor}"><h2>{html.escape(sec.title)}</h2>']
        parts += _paragraphs(sec.text)
        for block in sec.preformatted:
            parts.append(f"<pre>{html.escape(block)}</pre>")
        for raw in sec.figures:
            fig = _as_figure(raw, sec.title)
            rel = Path(os.path.relpath(Path(fig.path).resolve(), path.parent.resolve())).as_posix()
            caption = f"<figcaption>{html.escape(fig.caption)}</figcaption>" if fig.caption else ""
            parts.append(
                f'<figure><img src="{html.escape(rel)}" alt="{html.escape(fig.alt)}">'
                f"{caption}</figure>"
            )
        parts.append('<p class="top"><a href="#contents">back to contents</a></p></section>')
        body.append("\n".join(parts))
    if settings or timings:
        anchor = unique("run")
        name, block = _run_section(settings, timings, anchor)
        toc.append(f'<li><a href="#{anchor}">{name}</a></li>')
        body.append(block)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='meta'>written {stamp}</p>\n"
        f"<nav id='contents'><h2>Contents</h2><ol>{''.join(toc)}</ol></nav>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    return atomic_write_text(path, page)
