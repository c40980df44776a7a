"""A griffe extension for the API reference: reads visjax's docstring conventions as Google style.

visjax's docstrings follow optax's template with habits griffe's Google parser does not know:
a singular ``Example:`` section of doctests (griffe knows only ``Examples:`` and would render the
doctests as prose), one ``Args:`` entry for several parameters (``xs, ys: strictly increasing
grids.``), which griffe reads as one unknown parameter, and Sphinx roles (``:func:``,
``:class:``, ``:math:``, ...), which Markdown shows verbatim. This extension renames the section,
repeats such an entry once per name and turns a role into inline code before griffe parses the
docstring (maths stays LaTeX source: the site loads no maths renderer, since it must work offline).
Loaded by mkdocs.yml (mkdocstrings ``extensions``); not part of the package.
"""

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Keyword Args|Keyword Arguments):[ \t]*$")
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc|math):`~?([^`]+)`")
_SHARED_ENTRY = re.compile(r"^(\s+)(\*{0,2}\w+(?:, \*{0,2}\w+)+):(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _split_shared_entries(text: str) -> str:
    """Repeats each ``a, b: description`` entry of an arguments section once per name."""
    lines = text.split("\n")
    out: list[str] = []
    section_indent: int | None = None
    entry_indent: int | None = None  # the indentation of the section's entries
    i = 0
    while i < len(lines):
        line = lines[i]
        header = _SECTION.match(line)
        if header:
            section_indent, entry_indent = len(header.group(1)), None
        elif line.strip() and section_indent is not None and _indent(line) <= section_indent:
            section_indent = None  # the next section (or prose) starts
        elif line.strip() and section_indent is not None and entry_indent is None:
            entry_indent = _indent(line)
        entry = _SHARED_ENTRY.match(line) if section_indent is not None else None
        if entry is not None and len(entry.group(1)) != entry_indent:
            entry = None  # a continuation line, not an entry
        if entry is None:
            out.append(line)
            i += 1
            continue
        indent, names, description = entry.groups()
        body = []  # the entry's continuation lines (indented deeper than the entry)
        i += 1
        while i < len(lines) and lines[i].strip() and _indent(lines[i]) > len(indent):
            body.append(lines[i])
            i += 1
        for name in names.split(", "):
            out += [f"{indent}{name}:{description}", *body]
    return "\n".join(out)


class VisjaxConventions(griffe.Extension):
    """Applies the three rewrites to every loaded docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is None:
            return
        value = _EXAMPLE.sub(r"\1Examples:", docstring.value)
        value = _split_shared_entries(_ROLE.sub(r"`\1`", value))
        if value != docstring.value:
            docstring.value = value
            docstring.__dict__.pop("parsed", None)  # parsed before the rewrite: parse again
