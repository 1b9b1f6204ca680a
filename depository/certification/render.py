"""Report data → HTML (Jinja2 templates in ``depository/templates/certification``) → PDF/A-3b
(WeasyPrint) with the report's data embedded as attachments."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from depository.certification import charts
from depository.certification.content import LIMITS
from depository.certification.signoffs import SignerSpec, SignoffStatus

__all__ = ["Attachment", "render_html", "render_pdf", "verdict_words"]

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "certification"


@dataclass(frozen=True)
class Attachment:
    name: str
    data: bytes
    relationship: str  # "Data", "Supplement", "Source", ...
    description: str


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
