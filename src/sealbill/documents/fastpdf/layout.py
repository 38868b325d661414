"""The invoice page of ``templates/invoice.typ``, compiled: positions computed in Python.

It draws the same view (:func:`sealbill.documents.pdf.invoice_view`: every string already
formatted for the reader's locale) in the same places as the Typst template — seller and
title header, buyer box, lines table, VAT breakdown beside the totals, payment, legal
mentions, footer with "Page 1/1" — with the same fonts, sizes and colours.

Invariants:
- every string of the view that Typst prints is drawn (nothing is truncated: a text that
  does not fit its space raises :class:`NoFit`, and so does a page that overflows);
- the text is drawn in reading order (header, buyer, lines row by row, VAT, totals,
  payment, mentions, footer), so text extraction reads it as the Typst PDF reads.
"""

from __future__ import annotations

from typing import Any, Final

from sealbill.documents.fastpdf.canvas import PAGE_HEIGHT, PAGE_WIDTH, Canvas, NoFit, wrap
from sealbill.documents.fastpdf.fonts import Style, style

MM: Final = 72 / 25.4
LEFT: Final = 18 * MM
RIGHT: Final = PAGE_WIDTH - 18 * MM
TOP: Final = 15 * MM
BOTTOM: Final = PAGE_HEIGHT - 22 * MM
WIDTH: Final = RIGHT - LEFT
ACCENT: Final = (31 / 255, 58 / 255, 95 / 255)
BLACK: Final = (0.0, 0.0, 0.0)
MUTED: Final = (95 / 255,) * 3
HAIRLINE: Final = (190 / 255,) * 3
SHADE: Final = (246 / 255,) * 3
CAP: Final = {"regular": 0.658, "bold": 0.645}  # cap heights (em) of Libertinus Serif
BODY: Final = 9.5
# par(leading: 0.5em), the em being the text size where the paragraph starts: 9.5 pt for
# most, 8.5 pt in the seller block (its paragraph starts after `set text(8.5pt)`).
LEADING: Final = 0.5 * BODY
SAFETY: Final = 6.0  # pt kept free above the bottom margin: never fit what Typst would not


class Page:
    """Lays out one invoice view on one A4 page; :meth:`draw` returns the canvas."""

    def __init__(self, view: dict[str, Any]) -> None:
        self.view = view
        self.c = Canvas()
        self.regular = style("regular")
        self.bold = style("bold")

    def draw(self) -> Canvas:
        # Gaps between blocks measured on the Typst PDF (v(…) + block spacing).
        y = self._header(TOP)
        y = self._buyer(y + 13.6)
        y = self._lines(y + 13.7)
        y = self._totals(y + 13.7)
        y = self._notices(y + 15.5)
        if y > BOTTOM - SAFETY:
            raise NoFit("the invoice does not fit on one page")
        self._footer()
        return self.c

    # ---- paragraphs of stacked lines ----
    def _stack(self, x: float, top: float, width: float, texts: list[str], st: Style,
               size: float, color: tuple[float, float, float], leading: float = LEADING
               ) -> float:
        """Draw ``texts`` (each wrapped) one under the other, their first line's cap height
        at ``top``; returns the last baseline."""
        c, baseline = self.c, top
        first = True
        for text in texts:
            if not text:
                continue
            for line in wrap(c, text, st, size, width):
                baseline += size * CAP[st.name] + (0 if first else leading)
                first = False
                c.text(x, baseline, line, st, size, color)
        return baseline

    def _caption(self, x: float, baseline: float, text: str) -> None:
        upper = text.upper()
        self.c.text(x, baseline, upper, self.bold, 7.5, ACCENT, tracking=0.4)

    # ---- blocks ----
    def _header(self, top: float) -> float:
        v, c, bold, regular = self.view, self.c, self.bold, self.regular
        meta = [(k, v_) for k, v_ in v["meta"]]
        key_w = max(c.width(k, regular, 8.5) for k, _ in meta)
        val_w = max(c.width(val, bold, 8.5) for _, val in meta)
        title = v["title"].upper()
        right_w = max(c.width(title, bold, 19), key_w + 10 + val_w)
        if right_w > WIDTH * 0.55:
            raise NoFit("header references too wide")
        left_w = WIDTH - right_w - 14
        seller = v["seller"]
        y = self._stack(LEFT, top, left_w, [seller["name"]], bold, 14, ACCENT)
        y = self._stack(LEFT, y + 9.2, left_w, seller["address"], regular, 8.5, BLACK, 4.25)
        y = self._stack(LEFT, y + 4.25, left_w, seller["ids"], regular, 8.5, MUTED, 4.25)
        left_end = self._stack(LEFT, y + 4.25, left_w, seller["contact"], regular, 8.5, MUTED,
                               4.25)
        baseline = top + 19 * CAP["bold"]
        c.right(RIGHT, baseline, title, bold, 19, ACCENT)
        row_top = baseline + 13.2
        for key, value in meta:
            base = row_top + 1.6 + 8.5 * CAP["regular"]
            c.right(RIGHT - val_w - 10, base, key, regular, 8.5, MUTED)
            c.right(RIGHT, base, value, bold, 8.5, BLACK)
            row_top = base + 1.6
        return max(left_end, row_top)

    def _buyer(self, top: float) -> float:
        buyer, c = self.view["buyer"], self.c
        half = (WIDTH - 16) / 2
        x, inner = LEFT + half + 16, half - 16
        ops_at = len(c.ops)
        baseline = top + 8 + 7.5 * CAP["bold"]
        self._caption(x + 8, baseline, buyer["heading"])
        baseline = self._stack_after(x + 8, baseline, inner, [buyer["name"]], self.bold,
                                     BODY, BLACK)
        baseline = self._stack_after(x + 8, baseline, inner, buyer["address"], self.regular,
                                     BODY, BLACK)
        if buyer["ids"]:
            baseline = self._stack_after(x + 8, baseline, inner, buyer["ids"], self.regular,
                                         8.0, MUTED)
        bottom = baseline + 8 + 2
        box_ops = len(c.ops)
        c.box(x, top, half, bottom - top, SHADE)
        c.ops.insert(ops_at, c.ops.pop(box_ops))  # the shade goes under the text
        return bottom

    def _stack_after(self, x: float, baseline: float, width: float, texts: list[str],
                     st: Style, size: float, color: tuple[float, float, float]) -> float:
        """Lines continuing a paragraph whose last baseline is ``baseline``."""
        return self._stack(x, baseline + LEADING, width, texts, st, size, color)

    def _lines(self, top: float) -> float:
        v, c, regular, bold = self.view, self.c, self.regular, self.bold
        keys = ("quantity", "unit_price", "vat", "amount")
        widths = [max([c.width(v["columns"][i + 1], bold, 8)]
                      + [c.width(line[k], regular, BODY) for line in v["lines"]]) + 8
                  for i, k in enumerate(keys)]
        desc_w = WIDTH - sum(widths)
        if desc_w < 140:
            raise NoFit("amount columns too wide for the description")
        # header row
        base = top + 3.6 + 8 * CAP["bold"]
        c.text(LEFT + 4, base, v["columns"][0], bold, 8, ACCENT)
        x = LEFT + desc_w
        for i, w in enumerate(widths):
            x += w
            c.right(x - 4, base, v["columns"][i + 1], bold, 8, ACCENT)
        y = base + 3.6
        c.rule(LEFT, RIGHT, y, 0.7, ACCENT)
        for line in v["lines"]:
            base = y + 3.6 + BODY * CAP["regular"]
            end = self._stack(LEFT + 4, y + 3.6, desc_w - 8, [line["description"]], regular,
                              BODY, BLACK)
            if line["detail"]:
                end = self._stack_after(LEFT + 4, end, desc_w - 8, [line["detail"]], regular,
                                        7.5, MUTED)
            x = LEFT + desc_w
            for k, w in zip(keys, widths, strict=True):
                x += w
                c.right(x - 4, base, line[k], regular, BODY, BLACK)
            y = end + 3.6
            c.rule(LEFT, RIGHT, y, 0.4, HAIRLINE)
            if y > BOTTOM:
                raise NoFit("more lines than the page holds")
        return y

    def _totals(self, top: float) -> float:
        v, c, regular, bold = self.view, self.c, self.regular, self.bold
        totals, grand = v["totals"], v["grand"]
        k_w = max([c.width(k, regular, BODY) for k, _ in totals] + [c.width(grand[0], bold, 11)])
        v_w = max([c.width(x, regular, BODY) for _, x in totals] + [c.width(grand[1], bold, 11)])
        right_w = k_w + v_w + 18 + 16
        left_w = WIDTH - right_w - 22
        vat = v["vat"]
        cols = vat["columns"]
        base_w = max([c.width(cols[1], regular, 8)] + [c.width(r[1], regular, BODY)
                                                        for r in vat["rows"]]) + 8
        tax_w = max([c.width(cols[2], regular, 8)] + [c.width(r[2], regular, BODY)
                                                       for r in vat["rows"]]) + 8
        name_w = left_w - base_w - tax_w
        if name_w < 60:
            raise NoFit("VAT breakdown too wide")
        # left: caption and VAT table
        baseline = top + 7.5 * CAP["bold"]
        self._caption(LEFT, baseline, vat["heading"])
        y = baseline + 7.5
        base = y + 3 + 8 * CAP["regular"]
        c.right(LEFT + name_w + base_w - 4, base, cols[1], regular, 8, MUTED)
        c.right(LEFT + left_w - 4, base, cols[2], regular, 8, MUTED)
        y = base + 3
        c.rule(LEFT, LEFT + left_w, y, 0.5, ACCENT)
        for name, amount, tax in vat["rows"]:
            end = self._stack(LEFT + 4, y + 3, name_w - 8, [name], regular, BODY, BLACK)
            base = y + 3 + BODY * CAP["regular"]
            c.right(LEFT + name_w + base_w - 4, base, amount, regular, BODY, BLACK)
            c.right(LEFT + left_w - 4, base, tax, regular, BODY, BLACK)
            y = end + 3
            c.rule(LEFT, LEFT + left_w, y, 0.4, HAIRLINE)
        # right: totals
        x = RIGHT - right_w
        row = top
        for key, value in totals:
            base = row + 3 + BODY * CAP["regular"]
            c.text(x + 4, base, key, regular, BODY, BLACK)
            c.right(RIGHT - 4, base, value, regular, BODY, BLACK)
            row = base + 3
        c.rule(x, RIGHT, row, 0.7, ACCENT)
        base = row + 3 + 11 * CAP["bold"]
        c.text(x + 4, base, grand[0], bold, 11, ACCENT)
        c.right(RIGHT - 4, base, grand[1], bold, 11, ACCENT)
        return max(y, base + 3)

    def _notices(self, top: float) -> float:
        v = self.view
        baseline = top + 7.5 * CAP["bold"]
        self._caption(LEFT, baseline, v["payment"]["heading"])
        y = self._stack_after(LEFT, baseline, WIDTH, v["payment"]["lines"], self.regular, 8.5,
                              BLACK)
        baseline = y + 4 + 7.6 + 7.5 * CAP["bold"]
        self._caption(LEFT, baseline, v["mentions"]["heading"])
        return self._stack_after(LEFT, baseline, WIDTH, v["mentions"]["lines"], self.regular,
                                 7.5, MUTED)

    def _footer(self) -> None:
        v, c = self.view, self.c
        top = BOTTOM + 0.3 * 22 * MM - 2
        c.rule(LEFT, RIGHT, top, 0.4, HAIRLINE)
        page = f"{v['labels']['page']} 1/1"
        page_w = c.width(page, self.regular, 7.5)
        base = top + 4 + 7.5 * CAP["regular"]
        c.right(RIGHT, base, page, self.regular, 7.5, MUTED)
        lines = wrap(c, v["footer"], self.regular, 7.5, WIDTH - page_w - 12)
        if len(lines) > 2:
            raise NoFit("footer too long")
        self._stack(LEFT, top + 4, WIDTH - page_w - 12, [v["footer"]], self.regular, 7.5,
                    MUTED, 3.75)
