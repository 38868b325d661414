"""PDF of a Markdown draft, typeset by Typst from data (``sys.inputs``), never from source text.

The Markdown draft is the single source: it is cut into blocks (headings, list items,
paragraphs) made of spans (plain, bold, code), which travel as JSON into ``draft.typ``; the
template places each span as *text*. So the PDF says what the Markdown says, and nothing in a
customer name or an operator's note can be evaluated as Typst markup.

Invariants:
- a bold span starting with MISSING / MANQUANT is flagged ``alert`` (printed in red);
- only the subset the drafts use is recognised (``#``-headings, ``- `` items, paragraphs,
  ``**bold**``, ```code```, backslash escapes); any other character is text;
- every character of the Markdown's text content reaches exactly one span, in order.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import typst

_TEMPLATE = "draft.typ"
ALERT_WORDS = ("MISSING", "MANQUANT")


def inline_spans(text: str) -> list[dict[str, Any]]:
    r"""Split a line into spans; ``\x`` is a literal ``x``.

    >>> [(s["text"], s["strong"]) for s in inline_spans(r"a **b\*c** d")]
    [('a ', False), ('b*c', True), (' d', False)]
    """
    spans: list[dict[str, Any]] = []
    current: list[str] = []
    strong = code = False

    def flush() -> None:
        if current:
            text = "".join(current)
            # A missing field must stand out on paper as it does in the status command.
            alert = strong and text.startswith(ALERT_WORDS)
            spans.append({"text": text, "strong": strong, "code": code, "alert": alert})
            current.clear()

    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and not code:
            current.append(text[i + 1])
            i += 2
            continue
        if char == "`":
            flush()
            code = not code
        elif text.startswith("**", i) and not code:
            flush()
            strong = not strong
            i += 1
        else:
            current.append(char)
        i += 1
    flush()
    return spans


def markdown_blocks(markdown: str) -> list[dict[str, Any]]:
    """Headings, lists and paragraphs (consecutive items, and consecutive plain lines, join)."""
    blocks: list[dict[str, Any]] = []
    paragraph: list[str] = []

    def end_paragraph() -> None:
        if paragraph:
            blocks.append({"kind": "para", "spans": inline_spans(" ".join(paragraph))})
            paragraph.clear()

    for raw_line in markdown.splitlines():
        line = raw_line.strip()
        if not line:
            end_paragraph()
        elif line.startswith("#"):
            end_paragraph()
            marks, _, title = line.partition(" ")
            blocks.append({"kind": "heading", "level": min(len(marks), 3),
                           "spans": inline_spans(title)})
        elif line.startswith("- "):
            end_paragraph()
            if not blocks or blocks[-1]["kind"] != "list":
                blocks.append({"kind": "list", "items": []})
            blocks[-1]["items"].append(inline_spans(line[2:]))
        else:
            paragraph.append(line)
    end_paragraph()
    return blocks


def render_pdf(markdown: str, *, lang: str, title: str, footer: str) -> bytes:
    data = {"lang": lang, "title": title, "footer": footer,
            "blocks": markdown_blocks(markdown)}
    template = resources.files("sealbill.incident") / "templates" / _TEMPLATE
    with resources.as_file(template) as path:
        return bytes(typst.compile(str(Path(path)), format="pdf",
                                   sys_inputs={"data": json.dumps(data)}))
