"""The pieces of a self-contained HTML page: figures as base64 PNG, tables, folded parts; no external asset.

The page's one script runs on load and logs an error for every figure that did not decode, then writes the
number that did into ``<body data-figures-loaded>``: a browser's console and DOM say whether every figure is
there.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

#: marks a page as a report, which a later report may replace
GENERATOR = '<meta name="generator" content="multitask report">'

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 1.5em 3em; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 0.2em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f5f5f5; position: sticky; top: 0; }
td:first-child, th:first-child { text-align: left; }
.scroll { max-height: 32em; overflow: auto; display: inline-block; max-width: 100%; }
figure { margin: 0.8em 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; }
details { margin: 0.5em 0; } summary { cursor: pointer; color: #1f5fa8; }
.note { color: #555; font-size: 0.9em; } .best { font-weight: bold; }
pre { background: #f7f7f7; padding: 0.8em; overflow: auto; font-size: 0.8em; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var loaded = 0;
  document.querySelectorAll("img.figure").forEach(function (img) {
    if (img.complete && img.naturalWidth > 0) { loaded += 1; }
    else { console.error("figure did not load: " + img.alt); }
  });
  document.body.setAttribute("data-figures-loaded", String(loaded));
});
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


@dataclass
class Section:
    """One part of the page: an anchor, a title and its HTML; ``figures`` counts the images in it."""

    id: str
    title: str
    parts: list[str] = field(default_factory=list)
    figures: int = 0

    def add(self, text: str) -> None:
        self.parts.append(text)

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{esc(text)}</p>')

    def figure(self, png: bytes, alt: str, caption: str = "") -> str:
        """The HTML of one figure (counted in this section; the caller places it)."""
        self.figures += 1
        data = base64.b64encode(png).decode("ascii")
        cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
        return f'<figure><img class="figure" alt="{esc(alt)}" src="data:image/png;base64,{data}">{cap}</figure>'

    def html(self) -> str:
        return f'<section id="{esc(self.id)}" data-figures="{self.figures}">\n<h2>{esc(self.title)}</h2>\n' + \
            "\n".join(self.parts) + "\n</section>"


def details(summary: str, body: str, open_: bool = False) -> str:
    return f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary>\n{body}\n</details>"


def table(header: Sequence[str], rows: Sequence[Sequence[object]], *, scroll: bool = True,
          classes: Sequence[Sequence[str]] | None = None) -> str:
    """An HTML table of escaped cells (``classes[r][c]`` an optional CSS class per cell)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for r, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            cls = classes[r][c] if classes is not None and classes[r][c] else ""
            cells.append(f'<td class="{cls}">{esc(value)}</td>' if cls else f"<td>{esc(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    text = f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>"
    return f'<div class="scroll">{text}</div>' if scroll and len(rows) > 25 else text


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    nav = " ".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(s.html() for s in sections)
    return (
        f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{GENERATOR}"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
        f"<style>{STYLE}</style><script>{SCRIPT}</script></head>\n<body>\n<h1>{esc(title)}</h1>\n"
        f"<p class=\"note\">{esc(subtitle)}</p>\n<nav>{nav}</nav>\n{body}\n</body></html>\n"
    )
