"""Pieces of HTML the templates use, built from data only through escaping. Pure functions.

Everything from a message (headline, sentence, outlet, URL) is text: it is escaped here or by
Jinja2's autoescape, never trusted as markup.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
from urllib.parse import urlsplit

from markupsafe import Markup, escape
from newsmon.classifier.lexicon import TOPICAL_CATEGORIES
from newsmon.shared.messages import Term

__all__ = [
    "category_colour",
    "chart_svg",
    "colour_index",
    "highlight",
    "safe_href",
    "when",
]

# Colour-blind-safe palette (Okabe & Ito, "Color Universal Design", 2008), then grey.
_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
_KNOWN = TOPICAL_CATEGORIES


def colour_index(category: str) -> int:
    """A stable palette slot per category (known ones fixed, others by their bytes); the
    stylesheet has one class per slot (.c0 ...), as the page allows no inline style."""
    if category in _KNOWN:
        return _KNOWN.index(category) % len(_PALETTE)
    return sum(category.encode()) % len(_PALETTE)


def category_colour(category: str) -> str:
    return _PALETTE[colour_index(category)]


def highlight(sentence: str, terms: Sequence[Term]) -> Markup:
    """The sentence, escaped, with each matched term wrapped in <mark>. Offsets come from the
    message: out-of-range or overlapping ones are clamped or skipped, never trusted."""
    parts: list[str] = []
    at = 0
    for term in sorted(terms, key=lambda t: (t.start, -t.end)):
        start, end = max(term.start, at), min(term.end, len(sentence))
        if start >= end:
            continue
        parts.append(escape(sentence[at:start]))
        category = escape(term.category)
        parts.append(
            Markup('<mark class="term" title="{0}">{1}</mark>').format(
                category, sentence[start:end]
            )
        )
        at = end
    parts.append(escape(sentence[at:]))
    return Markup("").join(parts)


def safe_href(url: str) -> str | None:
    """The URL if it is an http(s) link, else None: a `javascript:` or `data:` URL from a feed
    is shown as text, never as a link."""
    # urlsplit strips leading C0 controls and spaces the way browsers do (WHATWG URL).
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url.strip() if scheme in ("http", "https") else None


def when(moment: datetime | None) -> str:
    """A UTC time as people read it: 2026-12-04 17:05 UTC."""
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


def chart_svg(per_day: Sequence[tuple[date, Counter[str]]], *, width: int = 720) -> Markup:
    """Stacked bars of alerts per day by category, with a legend, as inline SVG."""
    height, top, bottom, left = 170, 10, 30, 30
    categories = sorted({c for _, counts in per_day for c in counts})
    peak = max((sum(c.values()) for _, c in per_day), default=0) or 1
    legend_width = 130 if categories else 0
    plot_width = width - left - legend_width - 10
    slot = plot_width / max(len(per_day), 1)
    scale = (height - top - bottom) / peak
    out = [
        Markup(
            '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            'viewBox="0 0 {0} {1}" width="{0}" height="{1}">'
        ).format(width, height),
        Markup("<title>Alerts per day by category</title>"),
        Markup(
            '<text x="4" y="{0}" class="axis">{1}</text><text x="4" y="{2}" class="axis">0</text>'
        ).format(top + 8, peak, height - bottom),
    ]
    for index, (day, counts) in enumerate(per_day):
        x = left + index * slot
        y = float(height - bottom)
        for category in categories:
            n = counts.get(category, 0)
            if not n:
                continue
            y -= n * scale
            out.append(
                Markup(
                    '<rect x="{0:.1f}" y="{1:.1f}" width="{2:.1f}" height="{3:.1f}" fill="{4}">'
                    "<title>{5}: {6} {7}</title></rect>"
                ).format(
                    x + 2,
                    y,
                    max(slot - 4, 1),
                    n * scale,
                    category_colour(category),
                    day,
                    n,
                    category,
                )
            )
        if (len(per_day) - 1 - index) % 2 == 0 or len(per_day) <= 7:  # today labelled
            out.append(
                Markup('<text x="{0:.1f}" y="{1}" class="axis">{2}</text>').format(
                    x + 2, height - bottom + 14, day.strftime("%m-%d")
                )
            )
    for index, category in enumerate(categories):
        y = top + index * 16
        out.append(
            Markup(
                '<rect x="{0}" y="{1}" width="10" height="10" fill="{2}"></rect>'
                '<text x="{3}" y="{4}" class="legend">{5}</text>'
            ).format(
                width - legend_width,
                y,
                category_colour(category),
                width - legend_width + 14,
                y + 9,
                category,
            )
        )
    out.append(Markup("</svg>"))
    return Markup("").join(out)
