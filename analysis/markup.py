"""A report as a list of blocks, rendered to Markdown and to one self-contained HTML file.

Every heading gets an anchor: GitHub's slug of its text (lower case, punctuation dropped,
spaces to ``-``, ``-1``, ``-2`` ... on repeats), used as the HTML ``id`` too, so the contents'
links work in report.html, on GitHub and in most Markdown viewers alike.
"""

from __future__ import annotations

import base64
import html
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pandas as pd


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame  # cells already formatted as text


@dataclass(frozen=True)
class Image:
    path: str  # relative to the report's directory
    caption: str


@dataclass(frozen=True)
class Links:
    """``lead: a · b · c``, each name a link to a file beside the report."""

    lead: str
    paths: tuple[str, ...]  # relative to the report's directory


@dataclass(frozen=True)
class Contents:
    """Where the table of contents goes: every heading of ``min_level`` to ``max_level`` after
    it, nested by level."""

    min_level: int = 2
    max_level: int = 4


Block = Heading | Paragraph | Bullets | Table | Image | Links | Contents
CONTENTS_ID = "contents"


def slug(text: str) -> str:
    """GitHub's heading anchor, before de-duplication: ``Group wanda · 50%`` -> ``group-wanda--50``."""
    kept = []
    for ch in text.lower():
        if ch == " ":
            kept.append("-")
        elif ch in "-_" or unicodedata.category(ch)[0] in "LNM":
            kept.append(ch)
    return "".join(kept)


def heading_ids(blocks: list[Block]) -> dict[int, str]:
    """``id(block)`` -> anchor of every heading, unique in the report, repeats numbered as
    GitHub numbers them (``contents`` stays the table of contents' own)."""
    occurrences = {CONTENTS_ID: 0}
    ids = {}
    for block in blocks:
        if isinstance(block, Heading):
            base = slug(block.text) or "section"
            anchor = base
            while anchor in occurrences:
                occurrences[base] = occurrences.get(base, 0) + 1
                anchor = f"{base}-{occurrences[base]}"
            occurrences[anchor] = 0
            ids[id(block)] = anchor
    return ids


def _outline(blocks: list[Block], contents: Contents) -> list[tuple[int, str, str]]:
    """(level, text, anchor) of the headings the contents list, after the Contents block."""
    ids = heading_ids(blocks)
    start = next((i for i, b in enumerate(blocks) if b is contents), 0)
    return [
        (b.level, b.text, ids[id(b)])
        for b in blocks[start:]
        if isinstance(b, Heading) and contents.min_level <= b.level <= contents.max_level
    ]


def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            header = [_md_cell(c) for c in block.frame.columns]
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for row in block.frame.itertuples(index=False):
                lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
            out.append("\n".join(lines))
        elif isinstance(block, Image):
            out.append(f"![{block.caption}]({block.path})\n\n*{block.caption}*")
        elif isinstance(block, Links):
            out.append(f"{block.lead}: " + " · ".join(f"[{p}]({quote(p)})" for p in block.paths))
        elif isinstance(block, Contents):
            outline = _outline(blocks, block)
            if outline:
                top = min(level for level, _, _ in outline)
                lines = [f"{'  ' * (level - top)}- [{text}](#{anchor})"
                         for level, text, anchor in outline]  # fmt: skip
                out.append("**Contents**\n\n" + "\n".join(lines))
    return "\n\n".join(out) + "\n"


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
.table { overflow-x: auto; margin: 0.8em 0; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; }
td:first-child, th:first-child { text-align: left; }
tbody tr:has(> td:first-child:empty) > td { border-top: 1px dashed #ddd; }
figure { margin: 1em 0; }
img { max-width: 100%; }
figcaption { font-style: italic; color: #555; }
h2, h3, h4 { scroll-margin-top: 0.5em; }
a.up { font-size: 0.6em; font-weight: normal; margin-left: 0.6em; text-decoration: none;
       color: #888; }
nav.toc { font-size: 0.9em; background: #f7f7f7; border: 1px solid #ddd; padding: 0.6em 1em; }
nav.toc h2 { font-size: 1.1em; margin: 0.2em 0 0.4em; }
nav.toc ul { margin: 0; padding-left: 1.1em; }
nav.toc a { text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
@media (min-width: 1500px) {
  body { margin-left: 290px; max-width: 1280px; }
  nav.toc { position: fixed; top: 0; left: 0; bottom: 0; width: 250px; overflow-y: auto;
            border-width: 0 1px 0 0; }
}
"""


def _html_row(values) -> str:
    return "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in values) + "</tr>"


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(_html_row(row) for row in frame.itertuples(index=False))
    return (f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            "</table></div>")  # fmt: skip


def _html_contents(outline: list[tuple[int, str, str]]) -> str:
    """Nested lists of links, one level per heading level."""
    out = [f'<nav class="toc" id="{CONTENTS_ID}"><h2>Contents</h2>']
    if outline:
        top = min(level for level, _, _ in outline)
        depth = top - 1
        for level, text, anchor in outline:
            level = min(level, depth + 1)  # never skip a list level
            if level > depth:
                out.append("<ul>" * (level - depth))
            else:
                out.append("</li>" + "</ul></li>" * (depth - level))
            out.append(f'<li><a href="#{html.escape(quote(anchor))}">{html.escape(text)}</a>')
            depth = level
        out.append("</li>" + "</ul></li>" * (depth - top) + "</ul>")
    out.append("</nav>")
    return "".join(out)


def render_html(blocks: list[Block], base_dir: Path, title: str) -> str:
    """One HTML file with every image embedded as base64 (no external files)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
    ]
    ids = heading_ids(blocks)
    has_contents = any(isinstance(b, Contents) for b in blocks)
    for block in blocks:
        if isinstance(block, Heading):
            up = (f'<a class="up" href="#{CONTENTS_ID}" title="back to the contents">↑</a>'
                  if has_contents and block.level > 1 else "")  # fmt: skip
            anchor = html.escape(ids[id(block)])
            out.append(f'<h{block.level} id="{anchor}">{html.escape(block.text)}{up}'
                       f"</h{block.level}>")  # fmt: skip
        elif isinstance(block, Paragraph):
            out.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{html.escape(item)}</li>" for item in block.items)
            out.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            out.append(_html_table(block.frame))
        elif isinstance(block, Links):
            links = " · ".join(f'<a href="{html.escape(quote(p))}">{html.escape(p)}</a>'
                               for p in block.paths)  # fmt: skip
            out.append(f"<p>{html.escape(block.lead)}: {links}</p>")
        elif isinstance(block, Contents):
            out.append(_html_contents(_outline(blocks, block)))
        elif isinstance(block, Image):
            data = base64.b64encode((base_dir / block.path).read_bytes()).decode("ascii")
            caption = html.escape(block.caption)
            out.append(
                f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
