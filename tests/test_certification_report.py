"""The certification report as its readers get it: the OSCAL results against NIST's schema
and compliance-trestle's models, the signed PDF still PDF/A-3b, and the pages a reviewer
signs (no text off the page or printed over other text, no raw numbers, no temporary
paths, every load chart, every procedure in full).

One certification cycle per module: a store, load results whose charts are drawn by the
load-test chart code, a run, five sign-offs and a PAdES-signed final report.
"""

from __future__ import annotations

import copy
import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import regex
from _pdf_checks import layout_problems, pdfa3b_problems
from _sigstore_fixture import IDENTITY, ISSUER
from jsonschema import Draft7Validator, validators
from test_certification import SIGSTORE_ROLE, _setup

from depository.certification.content import LIMITS
from depository.certification.pdf import create_demo_ca, dummy_timestamper
from depository.certification.report import finalize, run_certification, sign_off

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SCHEMA = Path(__file__).parent / "vectors" / "oscal" / "oscal_assessment-results_schema.json"
MARGIN_X = 18 / 25.4 * 72  # report.css: 18 mm left and right
TITLES = {lim.id: lim.title for lim in LIMITS}
CHARTED = ("write-throughput", "query-response", "concurrent-writers")
# A procedure longer than the 300 characters the table used to cut it at.
PROCEDURE = ("Paced writers offer a load stepped upward (a stage table); every acknowledged "
             "write is durable (fsynced before the response). For each step the achieved "
             "rate of acknowledged writes, p99 latency and errors are computed from the "
             "per-request log; the figure is the highest achieved rate of a step whose p99 "
             "stays under the bound with zero errors, and the whole store is then replayed "
             "by the offline verifier, which must accept it: the closing words are "
             "zanzibar-quokka.")


def _draw_load_charts(results: Path) -> None:
    """Charts as a load run draws them (depository.loadtests.charts), named in the results;
    write throughput gets a real procedure text and a float measured as the runner
    computes it."""
    from depository.loadtests.charts import chart

    doc = json.loads((results / "results.json").read_text())
    details: dict[str, dict[str, Any]] = {
        "write-throughput": {"steps": [
            {"offered_rate": 100, "achieved_rate": 99.0, "p99_ms": 20.0},
            {"offered_rate": 200, "achieved_rate": 186.66666666666666, "p99_ms": 41.0}],
            "p99_bound_ms": 1000},
        "query-response": {"per_query_type_ms": {"list": {"p99_ms": 40.0, "p95_ms": 30.0},
                                                 "proof": {"p99_ms": 60.0, "p95_ms": 50.0}}},
        "concurrent-writers": {},
    }
    for e in doc["limits"]:
        if e["id"] not in CHARTED:
            continue
        res = {"id": e["id"], "title": TITLES[e["id"]], "profile": "certify",
               "figure": e["method"], "status": "measured", "target": e["target"],
               "latency_ms": {"p50": 4.2, "p95": 18.0, "p99": 41.5, "max": 50.0},
               "details": details[e["id"]]}
        path = chart(res, results / "charts")
        assert path is not None
        e["charts"] = [str(Path(path).relative_to(results))]
        if e["id"] == "write-throughput":
            e["figure"], e["method"] = e["method"], PROCEDURE
            e["measured"] = 1186.6666666666667
    (results / "results.json").write_text(json.dumps(doc, indent=1))


@pytest.fixture(scope="module")
def cycle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("certreport")
    env = _setup(base)
    _draw_load_charts(env["results"])
    report = base / "report"
    env["run"] = run_certification(env["store"], env["results"], report)
    with pytest.MonkeyPatch.context() as mp:  # keep sigstore-python off the user's caches
        mp.setenv("XDG_CACHE_HOME", str(base / "xdg-cache"))
        mp.setenv("XDG_DATA_HOME", str(base / "xdg-data"))
        for role, key in env["keys"].items():
            sign_off(report, role, signer_key=key)
        bundle = env["inst"].sign((report / "report.digest").read_bytes(), identity=IDENTITY,
                                  issuer=ISSUER)
        (base / "lane.sigstore.json").write_text(bundle)
        sign_off(report, SIGSTORE_ROLE, bundle=bundle.encode())
    ca = create_demo_ca(base / "ca")
    pdf, _ = finalize(report, key_file=ca.signer_key, cert_file=ca.signer_cert,
                      chain=[ca.ca_cert], timestamper=dummy_timestamper(ca.tsa_cert, ca.tsa_key))
    env.update(base=base, report=report, pdf=pdf, ca=ca, bundle=base / "lane.sigstore.json")
    return env


def _text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout


# --------------------------------------------------------------------------- 6. OSCAL
def _nist_validator() -> Any:
    """Draft-07 validation against NIST's schema, formats checked (``uri-reference`` with
    rfc3986-validator); ``pattern`` with the ``regex`` module, because NIST's patterns use
    Unicode classes (``\\p{L}``) that ``re`` lacks."""
    def pattern(_v: Any, patrn: str, instance: Any, _s: Any) -> Any:
        if isinstance(instance, str) and not regex.search(patrn, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")

    assert "uri-reference" in Draft7Validator.FORMAT_CHECKER.checkers
    cls = validators.extend(Draft7Validator, {"pattern": pattern})
    return cls(json.loads(SCHEMA.read_text()), format_checker=Draft7Validator.FORMAT_CHECKER)


def _oscal_problems(doc: dict[str, Any]) -> list[str]:
    """NIST schema errors, compliance-trestle model errors, and references that do not
    resolve (``#uuid`` hrefs to back-matter resources, observation uuids)."""
    from pydantic import ValidationError
    from trestle.oscal.assessment_results import AssessmentResults

    out = [f"schema: {'/'.join(map(str, e.absolute_path))}: {e.message[:160]}"
           for e in _nist_validator().iter_errors(doc)]
    try:
        AssessmentResults.model_validate(doc["assessment-results"])
    except ValidationError as exc:
        out += [f"trestle: {'/'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    ar = doc["assessment-results"]
    resources = {r["uuid"] for r in ar.get("back-matter", {}).get("resources", [])}
    hrefs = re.findall(r'"href": "([^"]*)"', json.dumps(ar))
    out += [f"href {h} names no back-matter resource" for h in hrefs
            if h.startswith("#") and h[1:] not in resources]
    for result in ar["results"]:
        obs = {o["uuid"] for o in result.get("observations", [])}
        out += [f"finding {f['title']} relates to unknown observation {r['observation-uuid']}"
                for f in result.get("findings", []) for r in f.get("related-observations", [])
                if r["observation-uuid"] not in obs]
    return out


def test_oscal_results_pass_nist_schema_and_trestle(cycle: dict[str, Any]) -> None:
    doc = json.loads((cycle["report"] / "report.oscal.json").read_text())
    assert _oscal_problems(doc) == []
    assert json.loads(SCHEMA.read_text())["$id"].endswith(
        f"/{doc['assessment-results']['metadata']['oscal-version']}/oscal-ar-schema.json")
    ar = doc["assessment-results"]
    resources = {r["uuid"]: r for r in ar["back-matter"]["resources"]}
    plan = resources[ar["import-ap"]["href"][1:]]
    assert plan["rlinks"][0]["href"] == "report.json"
    # Every file cited resolves to a file of the report directory.
    for r in resources.values():
        for link in r.get("rlinks", []):
            assert (cycle["report"] / link["href"]).is_file(), link
    # The PDF embeds the same OSCAL file.
    from depository.certification.pdf import attachments

    assert attachments(cycle["pdf"].read_bytes())["report.oscal.json"][0] == \
        (cycle["report"] / "report.oscal.json").read_bytes()


def test_oscal_checks_reject_what_was_wrong(cycle: dict[str, Any]) -> None:
    """Each defect of the old output, put back into a valid document, is caught."""
    good = json.loads((cycle["report"] / "report.oscal.json").read_text())
    result = good["assessment-results"]["results"][0]

    bad = copy.deepcopy(good)
    bad["assessment-results"]["results"][0]["observations"][0]["relevant-evidence"] = [
        {"href": "#store#0", "description": "log-record: store#0"}]
    assert any("uri-reference" in p for p in _oscal_problems(bad))

    bad = copy.deepcopy(good)
    limit_finding = next(f for f in bad["assessment-results"]["results"][0]["findings"]
                         if "scale-limit" in f["target"]["target-id"])
    limit_finding["related-observations"] = []
    problems = _oscal_problems(bad)
    assert any(p.startswith("schema:") and "non-empty" in p for p in problems), problems
    assert any(p.startswith("trestle:") and "related-observations" in p for p in problems)

    bad = copy.deepcopy(good)
    del bad["assessment-results"]["back-matter"]
    assert any("names no back-matter resource" in p for p in _oscal_problems(bad))

    bad = copy.deepcopy(good)
    f0 = next(f for f in bad["assessment-results"]["results"][0]["findings"]
              if f.get("related-observations"))
    f0["related-observations"][0]["observation-uuid"] = result["findings"][0]["uuid"]
    assert any("unknown observation" in p for p in _oscal_problems(bad))


# --------------------------------------------------------------------------- 7. PDF/A-3b
def test_signed_report_stays_pdfa3b(cycle: dict[str, Any]) -> None:
    pdf: Path = cycle["pdf"]
    assert pdfa3b_problems(pdf) == []
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True,
                          check=True).stdout
    assert re.search(r"^PDF version:\s+1\.7$", info, re.M), info
    assert "pyHanko" in re.search(r"^Producer:(.*)$", info, re.M)[1]  # type: ignore[index]
    # Still the signature every tool accepts.
    sig = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True)
    assert "Signature is Valid" in sig.stdout and "Total document signed" in sig.stdout
    # The unsigned renders are PDF/A-3b too.
    assert pdfa3b_problems(cycle["report"] / "review.pdf") == []


def test_pdfa_checks_catch_a_default_pyhanko_signature(cycle: dict[str, Any],
                                                       tmp_path: Path) -> None:
    """Signing as pyHanko does by default (an ECDSA P-256 key: PDF 2.0 and the ISO 32002
    extension; its own producer in the XMP) fails the checks."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    ca = cycle["ca"]
    signer = signers.SimpleSigner.load(str(ca.signer_key), str(ca.signer_cert))
    meta = signers.PdfSignatureMetadata(field_name="Sig",
                                        subfilter=fields.SigSeedSubFilter.PADES)
    writer = IncrementalPdfFileWriter(io.BytesIO((cycle["report"] / "review.pdf").read_bytes()))
    out = tmp_path / "default.pdf"
    out.write_bytes(signers.sign_pdf(writer, meta, signer=signer).getvalue())
    problems = pdfa3b_problems(out)
    assert any("sees PDF 2.0" in p for p in problems), problems
    assert any("/ISO_" in p for p in problems), problems
    assert any("/Producer" in p for p in problems), problems
    # And a PDF/A-2b file is not taken for PDF/A-3b.
    import weasyprint

    (tmp_path / "a2b.pdf").write_bytes(weasyprint.HTML(string="<p>x</p>").write_pdf(
        pdf_variant="pdf/a-2b"))
    assert any(p.startswith("6.6.4") for p in pdfa3b_problems(tmp_path / "a2b.pdf"))


# --------------------------------------------------------------------------- 8. the pages
@pytest.mark.parametrize("name", ["review.pdf", "report.pdf"])
def test_report_pages_layout(cycle: dict[str, Any], name: str) -> None:
    pdf = cycle["report"] / name
    assert layout_problems(pdf, MARGIN_X) == []


def test_layout_check_sees_overflow_and_overprint(tmp_path: Path) -> None:
    """The layout check fails on a hash that runs off the page and on two cells' texts
    printed over each other."""
    import weasyprint

    html = ("<style>@page{size:A4;margin:22mm 18mm} td{font:9pt 'DejaVu Sans'}"
            "table{table-layout:fixed;width:60mm}</style>"
            f"<p style='font:9pt DejaVu Sans'>{'ab12' * 40}</p>"
            f"<table><tr><td>{'cd34' * 12}</td><td>{'ef56' * 12}</td></tr></table>")
    pdf = tmp_path / "bad.pdf"
    pdf.write_bytes(weasyprint.HTML(string=html).write_pdf())
    problems = layout_problems(pdf, MARGIN_X)
    assert any("leaves the text area" in p for p in problems), problems
    assert any("printed over each other" in p for p in problems), problems


def test_report_text_is_readable(cycle: dict[str, Any]) -> None:
    text = _text(cycle["pdf"])
    flat = " ".join(text.split())
    # No path of the machine that ran the checks (the scratch copies lived under it).
    assert "/tmp/" not in text and str(cycle["base"]) not in text
    # Figures for people: no float with more than four decimals, no scientific notation.
    assert not re.findall(r"(?<![\d:.])\d+\.\d{5,}(?!\d)", text), \
        re.findall(r".{30}(?<![\d:.])\d+\.\d{5,}(?!\d).{10}", text)
    assert not re.findall(r"\d(?:\.\d+)?e[+-]\d+", text)
    assert "1,186.7 writes/s" in flat or "1186.7 writes/s" in flat, flat
    # "How obtained" in full, never cut mid-word.
    assert " ".join(PROCEDURE.split()) in flat
    # The share-of-target chart: a lower-is-better limit is not inverted (5 s ceiling,
    # 0.41 s measured is 8.2 % of it, not "1220 %").
    assert "1220 %" not in flat and "8.2 % of the ceiling" in flat, flat
    # Every chart the load test drew is in the report.
    for lid in CHARTED:
        assert f"{TITLES[lid]} (from the load test)" in flat, lid
