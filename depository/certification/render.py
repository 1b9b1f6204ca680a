"""Report data → HTML (Jinja2 templates in ``depository/templates/certification``) → PDF/A-3b
(WeasyPrint) with the report's data embedded as attachments."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from depository.certification import charts
from depository.certification.content import LIMITS
from depository.certification.signoffs import SignerSpec, SignoffStatus

__all__ = ["Attachment", "figure", "percent", "quantity", "render_html", "render_pdf", "tidy",
           "verdict_words"]

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "certification"


@dataclass(frozen=True)
class Attachment:
    name: str
    data: bytes
    relationship: str  # "Data", "Supplement", "Source", ...
    description: str


def figure(x: Any) -> str:
    """A number for people: digits grouped, at most four significant decimals, never in
    scientific notation (``186.66666666666666`` -> ``186.7``, ``5e+08`` ->
    ``500,000,000``); anything else as text."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return "—" if x is None else str(x)
    if float(x).is_integer() and abs(x) < 1e18:
        return f"{int(x):,}"
    ax = abs(float(x))
    if ax >= 1000:
        return f"{x:,.1f}"
    if ax >= 1:
        return f"{x:.4g}"
    text = f"{x:.3g}"
    return f"{x:.8f}".rstrip("0") if "e" in text else text


def percent(x: Any) -> str:
    """A percentage to two decimals; a small non-zero one as ``< 0.01 %``."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return "—"
    if 0 < x < 0.01:
        return "< 0.01 %"
    return f"{figure(round(float(x), 2))} %"


_UNITS = ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB"))


def _unit(unit: str) -> Markup:
    # A line breaks before a unit, never inside one ("writes/s").
    return Markup('<span class="unit">{}</span>').format(unit)


def quantity(x: Any, unit: str | None, exact: bool = True) -> Markup:
    """A figure with its unit (HTML); bytes in decimal units, with the exact count unless
    not ``exact`` (``500 MB (500,000,000 bytes)``)."""
    if x is None:
        return Markup("—")
    text = figure(x)
    if unit in ("bytes", "B") and isinstance(x, int | float) and not isinstance(x, bool):
        big = next(((f, u) for f, u in _UNITS if abs(x) >= f), None)
        if big is not None:
            human = escape(figure(round(x / big[0], 3))) + Markup(" ") + _unit(big[1])
            return human + Markup(" (") + escape(text) + Markup(" ") + _unit("bytes") \
                + Markup(")") if exact else human
    return escape(text) + Markup(" ") + _unit(unit) if unit else escape(text)


_SCI = re.compile(r"(?<![\w.])\d+(?:\.\d+)?[eE][+-]?\d+(?![\w.])")
_LONG = re.compile(r"(?<![\w.:\-])\d+\.\d{5,}(?![\w.])")


def tidy(text: Any) -> str:
    """Free text from the checks and the load results with its raw floats written for
    people (``3.2e+07`` -> ``32,000,000``, ``6798.340552241643`` -> ``6,798.3``); times
    (``14:59:03.114372``) and identifiers are left alone."""
    out = _SCI.sub(lambda m: figure(float(m[0])), str(text))
    return _LONG.sub(lambda m: figure(float(m[0])), out)


def verdict_words(data: Mapping[str, Any], statuses: Sequence[SignoffStatus]) -> tuple[str, str,
                                                                                       str]:
    """(word, css class, sentence) for the cover: the technical verdict and sign-offs."""
    passed = data["verdict"]["result"] == "pass"
    all_signed = bool(statuses) and all(s.state == "signed" for s in statuses)
    accepted = data["verdict"].get("accepted_extrapolations") or []
    accepted_text = (" Extrapolated, not measured, and accepted by the sign-offs: "
                     + "; ".join(f"{a['title']} ({a['rationale']})" for a in accepted) + "."
                     if accepted else "")
    if data["verdict"]["result"] == "demo":
        return ("DEMO / NOT A CERTIFICATION", "not-certified",
                "Every check passed, but the load figures do not certify the configured "
                "limits: " + "; ".join(data["verdict"].get("demo_reasons", [])[:3])
                + ("…" if len(data["verdict"].get("demo_reasons", [])) > 3 else "") + "."
                + accepted_text)
    if not passed:
        return ("NOT CERTIFIED", "not-certified",
                "The store does not meet its certification: "
                + "; ".join(data["verdict"]["reasons"][:3])
                + ("…" if len(data["verdict"]["reasons"]) > 3 else "") + ".")
    if not all_signed:
        return ("PENDING SIGN-OFF", "pending",
                "Every check passed and every scale limit was met; the certification is not "
                "final until all required signers have approved the report data."
                + accepted_text)
    return ("CERTIFIED", "certified",
            "Every check passed, every scale limit was met and every required signer "
            f"approved the report data. Valid until {data['validity']['until']}."
            + accepted_text)


def render_html(data: Mapping[str, Any], report_sha256: str, specs: Sequence[SignerSpec],
                statuses: Sequence[SignoffStatus], *, draft: bool,
                chart_files: Mapping[str, Path] | None = None) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             autoescape=True)
    env.filters.update(figure=figure, percent=percent, quantity=quantity, tidy=tidy)
    word, css_class, sentence = verdict_words(data, statuses)
    by_role = {s.role: s for s in statuses}
    rows = []
    for spec in specs:
        st = by_role.get(spec.role) or SignoffStatus(spec.role, "pending", reason="not signed")
        rows.append({"role": spec.role, "responsibility": spec.responsibility,
                     "required": (spec.name + ": " if spec.name else "") + spec.describe(),
                     "state": st.state, "who": st.who, "when": st.when, "how": st.how,
                     "reason": st.reason})
    directions = {lim.id: lim.higher_is_better for lim in LIMITS}
    limits = data["scale_limits"]["limits"]
    extra = []
    for lim in limits:
        for c in lim.get("charts", []):
            path = (chart_files or {}).get(c.get("file", ""))
            if c.get("embedded") and path is not None and path.is_file():
                uri = "data:image/svg+xml;base64," + base64.b64encode(path.read_bytes()).decode()
                extra.append({"title": f"{lim['title']} (from the load test)", "uri": uri})
    template = env.get_template("report.html.j2")
    return template.render(
        r=data, report_sha256=report_sha256, draft=draft, signoffs=rows,
        signed_count=sum(1 for s in statuses if s.state == "signed"),
        pending_roles=[s.role for s in statuses if s.state != "signed"],
        verdict_word=word, verdict_class=css_class, verdict_text=sentence,
        css=(TEMPLATE_DIR / "report.css").read_text(),
        checks_svg=charts.checks_chart(data["summary"]["checks"]),
        limits_svg=charts.limits_chart(limits, directions),
        latency_svg=charts.latency_chart(limits), extra_charts=extra,
        rendered_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def render_pdf(html: str, attachments: Sequence[Attachment], *, when: datetime | None = None
               ) -> bytes:
    """PDF/A-3b with the attachments embedded (AFRelationship as given)."""
    import weasyprint

    when = when or datetime.now(UTC)
    atts = [weasyprint.Attachment(string=a.data, name=a.name, description=a.description,
                                  relationship=a.relationship, created=when, modified=when)
            for a in attachments]
    pdf: bytes = weasyprint.HTML(string=html, base_url=str(TEMPLATE_DIR)).write_pdf(
        pdf_variant="pdf/a-3b", attachments=atts, uncompressed_pdf=False)
    return pdf
