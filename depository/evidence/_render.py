"""The human index ``index.pdf``: Jinja2 HTML rendered by WeasyPrint as PDF/A-3b."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jinja2

PDF_VARIANT = "pdf/a-3b"
_env: jinja2.Environment | None = None


def _environment() -> jinja2.Environment:
    global _env
    if _env is None:
        _env = jinja2.Environment(
            loader=jinja2.PackageLoader("depository", "templates/evidence"),
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
            lstrip_blocks=True,
        )
    return _env


def render_html(summary: Mapping[str, Any], holds: Sequence[Mapping[str, Any]],
                items: Sequence[Mapping[str, Any]], more: int) -> str:
    """The index as HTML (``summary``, ``holds`` and ``items`` as the template uses them)."""
    return _environment().get_template("index.html.j2").render(
        s=summary, holds=holds, items=items, more=more)


def render_pdf(summary: Mapping[str, Any], holds: Sequence[Mapping[str, Any]],
               items: Sequence[Mapping[str, Any]], more: int) -> bytes:
    """The index as PDF/A-3b bytes (fonts embedded, XMP metadata)."""
    from weasyprint import HTML

    html = render_html(summary, holds, items, more)
    pdf: bytes = HTML(string=html).write_pdf(pdf_variant=PDF_VARIANT)
    return pdf


def size_text(n: int) -> str:
    """Bytes as a human size, exact below 1 KiB: ``512 B``, ``1.5 KiB (1536 B)``."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit} ({n} B)"
    return f"{n} B"
