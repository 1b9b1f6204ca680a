"""The certification report as its readers get it: the OSCAL results against NIST's schema
and compliance-trestle's models, the signed PDF still PDF/A-3b, and the pages a reviewer
signs (no text off the page or printed over other text, no raw numbers, no temporary
paths, every load chart, every procedure in full).

One certification cycle per module: a store, load results whose charts are drawn by the
load-test chart code, a run, five sign-offs and a PAdES-signed final report.
"""

from __future__ import annotations

import copy
import functools
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
from _sigstore_fixture import COMMIT, IDENTITY, ISSUER
from jsonschema import Draft7Validator, validators
from test_certification import SIGSTORE_ROLE, _setup

from depository.certification.content import LIMITS
from depository.certification.pdf import create_demo_ca, dummy_timestamper
from depository.certification.report import finalize, sign_off
from depository.certification.report import run_certification as _run_certification
from depository.service import create_app

# The service sits above certification: the caller injects its app factory.
run_certification = functools.partial(_run_certification, service_factory=create_app)

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
               "figure": e["figure"], "status": "measured", "target": e["target"],
               "latency_ms": {"p50": 4.2, "p95": 18.0, "p99": 41.5, "max": 50.0},
               "details": details[e["id"]]}
        path = chart(res, results / "charts")
        assert path is not None
        e["chart"] = str(Path(path).relative_to(results))
        if e["id"] == "write-throughput":
            e["method"], e["measured"] = PROCEDURE, 1186.6666666666667
    (results / "results.json").write_text(json.dumps(doc, indent=1))


@pytest.fixture(scope="module")
def cycle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("certreport")
    env = _setup(base)
    _draw_load_charts(env["results"])
    report = base / "report"
    env["run"] = run_certification(env["store"], env["results"], report,
                                   commit=(COMMIT, False))
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
    # (pdftotext's reading order, not -layout: a cell's lines stay together)
    cells = " ".join(subprocess.run(["pdftotext", str(cycle["pdf"]), "-"], capture_output=True,
                                    text=True, check=True).stdout.split())
    assert "1,186.7 writes/s" in cells, cells  # a line may break before the unit only
    # "How obtained" in full, never cut mid-word.
    assert " ".join(PROCEDURE.split()) in flat
    # The share-of-target chart: a lower-is-better limit is not inverted (5 s ceiling,
    # 0.41 s measured is 8.2 % of it, not "1220 %").
    assert "1220 %" not in flat and "8.2 % of the ceiling" in flat, flat
    # Every chart the load test drew is in the report.
    for lid in CHARTED:
        assert f"{TITLES[lid]} (from the load test)" in flat, lid


# --------------------------------------------------------------------------- 9. commands
# Every command the README, the guides, the report (Appendix B) and the evidence index
# tell a person to run is extracted from the text and run here, in workspaces that hold
# what a real run made (this module's store, report and CA; an evidence package exported
# from the store with a loopback TSA). A placeholder (STORE, ORG-CA.pem, an example index)
# is replaced by the real path or value; nothing else of a command is changed.

ROOT = Path(__file__).resolve().parent.parent
_CMD_WORDS = ("depository ", "python ", "pdfsig ", "pdfdetach ", "pyhanko ", "sigstore ",
              "sha256sum ", "openssl ", "bagit.py ", "diff ", "curl ", "pip ", "make ",
              "aws ", "cd ")


def _is_command(text: str) -> bool:
    """An inline code span that is a whole command (not a name or a synopsis): a command
    word, a file or path argument, no ``a|b`` alternatives or ``...`` elisions."""
    t = " ".join(text.split())
    return (t.startswith(_CMD_WORDS) and "|" not in t.replace("||", "") and "..." not in t
            and any(("." in w or "/" in w) and not w.startswith("-") for w in t.split()[1:]))


def _logical_lines(block: str) -> list[str]:
    """Commands of a shell block: continuation lines joined, comments and blank lines
    dropped, optional ``[--opt X]`` groups kept (brackets removed)."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        if line and not line.startswith("#"):
            out.append(re.sub(r"\[([^\]]*)\]", r"\1", " ".join(line.split())))
    return out


def _markdown_commands(path: Path) -> list[tuple[str, str]]:
    """(where, command) for every fenced sh/bash block line, indented block line (the
    README's), and whole-command inline code span of a markdown file."""
    text = path.read_text()
    name = str(path.relative_to(ROOT))
    out = []
    for i, m in enumerate(re.finditer(r"```(\w*)\n(.*?)```", text, re.S)):
        if m[1] in ("sh", "bash", "shell", "console"):
            out += [(f"{name}#block{i}", c) for c in _logical_lines(m[2])]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for m in re.finditer(r"(?:^(?: {4}\S.*\n)+)", prose, re.M):
        out += [(f"{name}#indented", c) for c in _logical_lines(m[0])]
    for m in re.finditer(r"`([^`\n]+(?:\n[^`\n]+)?)`", prose):
        if _is_command(m[1]):
            out.append((f"{name}#inline", " ".join(m[1].split())))
    return out


def _report_commands(cycle: dict[str, Any]) -> list[str]:
    """The code spans of the final report's Appendix B that are commands, checked to be
    printed in the signed PDF."""
    import html as html_lib

    from depository.certification.render import render_html
    from depository.certification.report import ReportDir

    rd = ReportDir.load(cycle["report"])
    page = render_html(rd.data, rd.sha256, rd.specs, rd.statuses(), draft=False)
    appendix = page[page.index("Appendix B."):]
    cmds = [" ".join(html_lib.unescape(c).split())
            for c in re.findall(r"<code>(.*?)</code>", appendix, re.S)]
    cmds = [c for c in cmds if _is_command(c)]
    printed = "".join(_text(cycle["pdf"]).split())  # lines wrap at spaces and hyphens
    for c in cmds:
        assert "".join(c.split()) in printed, f"{c!r} is not in the PDF as printed"
    return cmds


def _index_commands(package: Path) -> list[str]:
    """The evidence index's command blocks (pdftotext of data/index.pdf): the "Run the
    verifier" line and the "By hand" block, run as one script (its ``cd`` carries on)."""
    import zipfile

    with zipfile.ZipFile(package) as z:
        name = next(n for n in z.namelist() if n.endswith("/data/index.pdf"))
        (package.parent / "index.pdf").write_bytes(z.read(name))
    text = _text(package.parent / "index.pdf")
    lines = [ln.strip() for ln in text.splitlines()]
    cmds: list[str] = []
    block: list[str] = []
    for ln in lines:
        if block and block[-1].endswith("\\"):
            block[-1] = block[-1][:-1].rstrip() + " " + ln
        elif ln.startswith(("python -m ", "(cd ", "openssl ", "sha256sum ")):
            block.append(ln)
        elif block:
            cmds.append("\n".join(block))
            block = []
    if block:
        cmds.append("\n".join(block))
    return cmds


NETWORK = "needs the network"
_PG = "needs a PostgreSQL server"
# command -> (workspace, expected exit code, substitutions) or the reason it is not run.
# Workspaces: "ws" holds the store (a copy), log.vkey, checkpoints, a TSA-stamped case.zip,
# the reports and the CA files under the names the guides use; "fresh" starts empty (plus
# the README's l1.pdf); "pdf" holds the signed report.pdf, ORG-CA.pem / org-ca.pem,
# LOG.vkey / log.vkey, as Appendix B names them.
Spec = tuple[str, int, tuple[tuple[str, str], ...]] | str
COMMANDS: dict[str, Spec] = {
    # README
    "make demo": "the whole demo (minutes, with a load run); it is run as `make demo`",
    "make test": "this test suite itself",
    "depository init --store ./store --origin example.org/depository > log.vkey":
        ("fresh", 0, ()),
    "depository put --store ./store --product gurukul --name lessons/l1.pdf --metadata "
    "'{\"course\": \"algebra\"}' --provenance '{\"author\": \"t1\"}' l1.pdf": ("fresh", 0, ()),
    "depository ls --store ./store --product gurukul --meta course=algebra": ("fresh", 0, ()),
    "depository checkpoint --store ./store > saved-checkpoint.txt": ("fresh", 0, ()),
    "depository verify store ./store --key log.vkey --since-checkpoint saved-checkpoint.txt":
        ("fresh", 0, ()),
    "python -m depository.verifier store ./store --key log.vkey --since-checkpoint saved.txt":
        ("ws", 0, ()),
    "python -m depository.verifier proof record-42.tlog-proof --leaf record-42.json --key "
    "log.vkey": ("ws", 0, ()),
    # auditor guide
    "pip install .": f"{NETWORK}: installs the dependencies from PyPI (`make setup` does it "
                     "for this checkout)",
    "depository verify store ./store --key log.vkey --since-checkpoint saved-checkpoint.txt "
    "--save-checkpoint saved-checkpoint.txt": ("ws", 0, ()),
    "python -m depository.verifier store ./store --key log.vkey": ("ws", 0, ()),
    "depository verify package case.zip --key log.vkey --evidence-key evidence.vkey "
    "--tsa-cert tsa-ca.pem --json": ("ws", 0, ()),
    "python -m depository.verifier package case.zip --key log.vkey": ("ws", 0, ()),
    "python -m zipfile -e case.zip .": ("ws", 0, ()),
    "(cd case && sha256sum -c manifest-sha256.txt && sha256sum -c tagmanifest-sha256.txt)":
        ("ws", 0, ()),
    "python -m depository.verifier note case/data/checkpoint.txt --key log.vkey":
        ("ws", 0, ()),
    "python -m depository.verifier proof case/data/proofs/000000000042.tlog-proof --leaf "
    "case/data/records/000000000042.json --key log.vkey": ("ws", 0, (("000000000042",
                                                                      "{index}"),)),
    "python -m depository.verifier proof ID.tlog-proof --leaf ID.leaf.json --key log.vkey":
        "the two files are downloaded from the dashboard; tests/test_dashboard_browser.py "
        "downloads them in Chromium and runs this command on them",
    "python -m depository.verifier note case/tagmanifest.sig --key case/data/evidence.vkey":
        ("ws", 0, ()),
    "openssl ts -verify -data case/tagmanifest-sha256.txt -in case/tagmanifest.tsr -CAfile "
    "tsa-ca.pem": ("ws", 0, ()),
    "diff <(sed '1d;/^$/,$d' case/tagmanifest.sig) case/tagmanifest-sha256.txt": ("ws", 0, ()),
    "bagit.py --validate case/": ("ws", 0, ()),
    # (the reviewer guide below makes cert-2026-11; here it is an earlier report)
    "depository certify verify cert-2026-11/report.pdf --trust org-ca.pem --key log.vkey":
        ("ws", 0, (("cert-2026-11", "cert-2026-05"),)),
    # legal guide
    "depository hold place --store ./store --matter M-2026-17 --reason \"subpoena 24-17\" "
    "--product gurukul --from 2026-01-01 --to 2026-07-01": ("ws", 0, ()),
    "depository hold place --store ./store --matter M-2026-17 --reason \"subpoena 24-17\" "
    "--artifact art_wjcjdvfibre5sjcgk6extfcn --artifact art_lnifa5b533drbfiu5zrtay2j":
        ("ws", 0, (("art_wjcjdvfibre5sjcgk6extfcn", "{artifact0}"),
                   ("art_lnifa5b533drbfiu5zrtay2j", "{artifact1}"))),
    "depository hold list --store ./store --all": ("ws", 0, ()),
    "depository hold release --store ./store --reason \"case closed\" hold-42":
        ("ws", 0, (("hold-42", "{hold}"),)),
    "depository evidence export --store ./store --matter M-2026-17 --reason \"production to "
    "opposing counsel, order of 2027-02-11\" --load-file dat --out M-2026-17.zip":
        ("ws", 0, ()),
    "curl -sS -X POST -H \"Authorization: Bearer $LEGAL_TOKEN\" -H 'Content-Type: "
    "application/json' -d '{\"matter\": \"M-2026-17\", \"reason\": \"production to opposing "
    "counsel\", \"load_file\": \"dat\"}' https://depository.example/v1/evidence/exports":
        f"{NETWORK} and a served store with a legal token (the same export through the API "
        "is tested in tests/test_service_evidence.py)",
    "curl -sS -fOJ -H \"Authorization: Bearer $LEGAL_TOKEN\" "
    "https://depository.example/v1/evidence/exports/export-8123":
        f"{NETWORK} and a served store (see tests/test_service_evidence.py)",
    "sha256sum M-2026-17-20270211T101500Z.zip":
        ("ws", 0, (("M-2026-17-20270211T101500Z.zip", "M-2026-17.zip"),)),
    "python -m depository.verifier package M-2026-17-20270211T101500Z.zip --key log.vkey":
        ("ws", 0, (("M-2026-17-20270211T101500Z.zip", "M-2026-17.zip"),)),
    "depository vkey --store ./store": ("ws", 0, ()),
    "python -m depository.verifier package M-2026-17.zip --key log.vkey": ("ws", 0, ()),
    # operations guide
    "aws s3api create-bucket --bucket acme-depository --region eu-west-1 "
    "--create-bucket-configuration LocationConstraint=eu-west-1 "
    "--object-lock-enabled-for-bucket":
        f"{NETWORK} and AWS credentials (tests/test_s3_*.py create Object Lock buckets on a "
        "throwaway local Ceph RGW instead)",
    "aws s3api create-bucket --bucket acme-depository-anchors ... "
    "--object-lock-enabled-for-bucket": f"{NETWORK} and AWS credentials",
    "aws s3api get-object-lock-configuration --bucket acme-depository":
        f"{NETWORK} and AWS credentials",
    "depository verify store ./store --key log.vkey --anchors "
    "s3://acme-depository-anchors/checkpoints/":
        f"{NETWORK} and an S3 bucket (tests/test_s3_anchors.py verifies against anchors on a "
        "local Ceph RGW)",
    "depository verify store ./store --key log.vkey --anchors ./downloaded-anchors/":
        ("ws", 0, ()),
    "depository serve --store ./store --port 8000 --workers 2":
        "a server that runs until stopped (tests/test_service_server.py serves a store on "
        "127.0.0.1)",
    "depository serve --store ./store --port 8000 --load-results "
    "loadtest-certify/results.json --certification-report cert/report.pdf "
    "--certification-trust ca.pem":
        "a server that runs until stopped (tests/test_dashboard_browser.py serves a store "
        "with --load-results and --certification-report on 127.0.0.1 and drives /ui in "
        "Chromium)",
    "depository watch --store ./store --once --json":
        "its exit status follows the store's certification, which depends on this run "
        "(tests/test_ops_alerts.py runs `watch --once --json` on known stores with a real "
        "SMTP server and webhook receiver, tampered and not)",
    "depository watch --store ./store --interval 30":
        "runs until stopped (tests/test_ops_alerts.py runs single passes)",
    "depository alert rules > depository.rules.yml": ("fresh", 0, ()),
    # operations guide: PostgreSQL, backups, migration (sections 12-15)
    "depository init --store ./store-pg --engine postgresql --dsn \"host=db.example.org "
    "dbname=depository user=depository_service\" --admin-dsn \"host=db.example.org "
    "dbname=depository user=depository_owner\"":
        f"{_PG} (tests/test_pg_store.py creates stores on a real local one)",
    "depository serve --store ./store-pg --port 8001 --node-id a --advertise 10.0.0.11:7401 "
    "--peer-secret peer.secret": f"{_PG}; a server that runs until stopped (the SIGKILL drill "
                                 "runs two nodes on 127.0.0.1, see ADR 0014)",
    "depository serve --store ./store-pg --port 8002 --node-id b --advertise 10.0.0.12:7401 "
    "--peer-secret peer.secret": f"{_PG}; a server that runs until stopped",
    "depository export ./store ./backup-2026-12-04 --key log.vkey": ("ws", 0, ()),
    "pg_dump --format=custom --serializable-deferrable --file depository.dump \"host="
    "db.example.org dbname=depository user=depository_owner\"": f"{_PG} with a store in it",
    "pg_basebackup --pgdata /backup/base --wal-method=stream --checkpoint=fast":
        f"{_PG} configured for replication",
    "pg_restore --exit-on-error --single-transaction --dbname \"host=db.example.org "
    "dbname=depository_restored user=depository_owner\" depository.dump":
        f"{_PG} and a dump",
    "depository verify store ./store-pg --key log.vkey --since-checkpoint "
    "saved-checkpoint.txt": f"{_PG} (tests/test_migrate_pg.py runs `verify store` on a "
                            "PostgreSQL store on a real local server)",
    "depository migrate ./store ./store-copy --key log.vkey": ("ws", 0, ()),
    "python -m depository.verifier note ./store-copy/migrations/*.manifest --key log.vkey":
        ("ws", 0, ()),
    "depository migrate ./store ./store-pg --to postgresql --dsn \"host=db.example.org "
    "dbname=depository user=depository_service\" --admin-dsn \"host=db.example.org "
    "dbname=depository user=depository_owner\" --key log.vkey":
        f"{_PG} (tests/test_migrate_pg.py migrates SQLite -> PostgreSQL -> SQLite on a real "
        "local one)",
    "depository migrate ./store-pg ./store-sqlite --key log.vkey":
        f"{_PG} (tests/test_migrate_pg.py)",
    "depository export ./store ./audit-copy --key log.vkey": ("ws", 0, ()),
    "python -m depository.verifier store ./audit-copy --key log.vkey": ("ws", 0, ()),
    # reviewer guide
    "depository key generate --name bucket-owner --out owner.key": ("fresh", 0, ()),
    "depository serve --store ./store --certification-report cert-2026-11/report.pdf "
    "--certification-trust org-ca.pem --load-results loadtest-results":
        "a server that runs until stopped (tests/test_dashboard_browser.py drives the "
        "dashboard; test_certification.py checks its certification card on a signed report)",
    "depository loadtest run --profile certify --out loadtest-results ...":
        "the certify profile runs the seven limits at their configured targets for a long "
        "time (make loadtest-certify); tests/test_loadtest_e2e.py runs the quick profile",
    "depository certify run --store ./store --results loadtest-results --previous "
    "cert-2026-05/report.pdf --out cert-2026-11": ("ws", 0, ()),
    "depository certify sign-off cert-2026-11 --role \"Bucket Owner\" --key owner.key":
        ("ws", 0, ()),
    "sigstore sign --bundle lane.sigstore.json cert-2026-11/report.digest":
        f"{NETWORK} and an OIDC identity (Sigstore public-good); here a private Sigstore "
        "instance signs the digest into lane.sigstore.json",
    "depository certify sign-off cert-2026-11 --role \"Executor Lane\" --sigstore-bundle "
    "lane.sigstore.json": ("ws", 0, ()),
    "depository certify status cert-2026-11": ("ws", 1, ()),  # sign-offs pending: exit 1
    "depository certify finalize cert-2026-11 --signing-key org.key --signing-cert org.pem "
    "--chain org-ca.pem --tsa http://tsa.example/tsr":
        ("ws", 0, (("http://tsa.example/tsr", "{tsa}"),)),
    "depository certify status cert-2026-11/report.pdf": ("ws", 0, ()),
    "depository certify diff cert-2026-05/report.pdf cert-2026-11/report.pdf --key log.vkey":
        ("ws", 0, ()),
    "pdfsig report.pdf": ("pdf", 0, ()),
    "pyhanko sign validate --trust org-ca.pem report.pdf": ("pdf", 0, ()),
    "pdfdetach -list report.pdf": ("pdf", 0, ()),
    "python -m depository.verifier store STORE --key log.vkey --since-checkpoint "
    "checkpoint.txt": ("pdf", 0, (("STORE", "{store}"),)),
    # the report, Appendix B
    "pyhanko sign validate --trust ORG-CA.pem report.pdf": ("pdf", 0, ()),
    "pdfdetach -saveall report.pdf": ("pdf", 0, ()),
    "depository certify verify report.pdf --trust ORG-CA.pem --key LOG.vkey": ("pdf", 0, ()),
    "python -m depository.verifier note checkpoint.txt --key LOG.vkey": ("pdf", 0, ()),
    "python -m depository.verifier store STORE --key LOG.vkey --since-checkpoint "
    "checkpoint.txt": ("pdf", 0, (("STORE", "{store}"),)),
    "sigstore --trust-config TRUST.json verify identity --bundle B --cert-identity ID "
    "--cert-oidc-issuer ISS report.digest":
        ("pdf", 0, (("--cert-identity ID", "--cert-identity {identity}"),
                    ("--cert-oidc-issuer ISS", "--cert-oidc-issuer {issuer}"))),
}
# On a working tree with uncommitted changes (or outside git) the new report cannot
# certify (it is DEMO / NOT A CERTIFICATION): these then exit 1, as documented.
CERTIFYING = {"depository certify run --store ./store --results loadtest-results --previous "
              "cert-2026-05/report.pdf --out cert-2026-11",
              "depository certify status cert-2026-11/report.pdf"}
# Output that must appear too (pdfsig exits 0 even on a broken signature).
OUTPUT = {"pdfsig report.pdf": "Signature is Valid",
          "pyhanko sign validate --trust ORG-CA.pem report.pdf": "INTACT:TRUSTED",
          "pyhanko sign validate --trust org-ca.pem report.pdf": "INTACT:TRUSTED"}


def _workspaces(cycle: dict[str, Any], root: Path, tsa_url: str) -> dict[str, Path]:
    """The directories the commands run in, holding what the guides assume."""
    import shutil

    from depository.certification.loadresults import code_commit
    from depository.certification.pdf import attachments
    from depository.evidence import export_package
    from depository.store import Store

    ws, fresh, pdf = root / "ws", root / "fresh", root / "pdf"
    for d in (ws, fresh, pdf):
        d.mkdir()
    (fresh / "l1.pdf").write_bytes(b"%PDF-1.7 lesson one\n")
    shutil.copytree(cycle["store"], ws / "store")
    vkey = cycle["vkey"] + "\n"
    ca = cycle["ca"]
    for name, src in (("org-ca.pem", ca.ca_cert), ("tsa-ca.pem", ca.ca_cert),
                      ("org.key", ca.signer_key), ("org.pem", ca.signer_cert)):
        shutil.copyfile(src, ws / name)
    (ws / "log.vkey").write_text(vkey)
    shutil.copyfile(cycle["base"] / "bucket-owner.key", ws / "owner.key")
    shutil.copytree(cycle["results"], ws / "loadtest-results")
    # A load test run on this code: its results name this commit (certify run binds them).
    commit, dirty = code_commit()
    doc = json.loads((ws / "loadtest-results" / "results.json").read_text())
    doc["environment"].update(git_commit=commit, git_dirty=dirty)
    (ws / "loadtest-results" / "results.json").write_text(json.dumps(doc))
    cycle["certifiable"] = commit is not None and not dirty
    shutil.copytree(cycle["report"], ws / "cert-2026-05")
    with Store.open(ws / "store") as s:
        s.put("gurukul", "lessons/l2.md", b"lesson two\n", actor="cli:teacher")
        ids = [a.id for a in s.ls(product="gurukul")]
        hold = s.place_hold(matter="CASE-1", reason="for the guides' commands",
                            actor="legal:test", product="gurukul")
        export_package(s, matter="CASE-1", out=ws / "case.zip", reason="guides",
                       actor="legal:test", tsa_url=tsa_url)
        size, note = s.latest_checkpoint()
        for name in ("saved-checkpoint.txt", "saved.txt"):
            (ws / name).write_bytes(note)
        (ws / "downloaded-anchors").mkdir()
        (ws / "downloaded-anchors" / str(size)).write_bytes(note)
        leaf = dict(s.log_entries(1, 2))[1]
        (ws / "record-42.json").write_bytes(leaf)
        (ws / "record-42.tlog-proof").write_bytes(s.proof_file(1))
    shutil.copyfile(ws / "store" / "keys" / "evidence.vkey", ws / "evidence.vkey")
    shutil.copyfile(cycle["pdf"], pdf / "report.pdf")
    for name in ("ORG-CA.pem", "org-ca.pem"):
        shutil.copyfile(ca.ca_cert, pdf / name)
    for name in ("LOG.vkey", "log.vkey"):
        (pdf / name).write_text(vkey)
    # The reviewer guide checks the store against the report's checkpoint, saved from it.
    (pdf / "checkpoint.txt").write_bytes(attachments(cycle["pdf"].read_bytes())
                                         ["checkpoint.txt"][0])
    cycle["fills"] = {"artifact0": ids[0], "artifact1": ids[1], "hold": hold.id,
                      "store": str(ws / "store"), "identity": IDENTITY, "issuer": ISSUER,
                      "tsa": tsa_url, "index": None}
    return {"ws": ws, "fresh": fresh, "pdf": pdf}


def _run(cmd: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", f"set -o pipefail\n{cmd}"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _before(cmd: str, cycle: dict[str, Any], dirs: dict[str, Path]) -> None:
    """What a person does by hand between two documented commands."""
    ws, pdf = dirs["ws"], dirs["pdf"]
    if "--sigstore-bundle lane.sigstore.json" in cmd:  # `sigstore sign`, on the network
        digest = (ws / "cert-2026-11" / "report.digest").read_bytes()
        (ws / "lane.sigstore.json").write_text(
            cycle["inst"].sign(digest, identity=IDENTITY, issuer=ISSUER))
    elif cmd.startswith("depository certify finalize cert-2026-11"):  # the other signers
        for role, key in cycle["keys"].items():
            if role != "Bucket Owner":
                sign_off(ws / "cert-2026-11", role, signer_key=key)
    elif cmd.startswith("sigstore --trust-config TRUST.json"):
        # "save the role's bundle from signoffs.json as B"; the pinned trust config
        records = json.loads((pdf / "signoffs.json").read_text())["signoffs"]
        bundle = next(r["bundle"] for r in records if r["role"] == SIGSTORE_ROLE)
        (pdf / "B").write_text(json.dumps(bundle))
        (pdf / "TRUST.json").write_bytes(next(pdf.glob("sigstore-trust-*.json")).read_bytes())


def test_documented_commands_run(cycle: dict[str, Any], tmp_path: Path) -> None:
    """Every command the README, the guides, the report and the evidence index give is run
    as written (placeholders filled) and exits as documented; the ones that need a
    network or a server are listed in COMMANDS with the reason."""
    import os
    import sys
    import zipfile

    from _sigstore_fixture import loopback_tsa

    sources: list[tuple[str, str]] = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs" / "guides").glob("*.md"))]:
        sources += _markdown_commands(md)
    sources += [("report.pdf, Appendix B", c) for c in _report_commands(cycle)]
    ca = cycle["ca"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
           "XDG_DATA_HOME": str(tmp_path / "xdg-data")}
    env.pop("DEPOSITORY_STORE", None)
    failures: list[str] = []
    used: set[str] = set()
    with loopback_tsa(dummy_timestamper(ca.tsa_cert, ca.tsa_key)) as url, \
            pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])
        mp.setenv("XDG_DATA_HOME", env["XDG_DATA_HOME"])
        dirs = _workspaces(cycle, tmp_path, url)
        with zipfile.ZipFile(dirs["ws"] / "case.zip") as z:
            cycle["fills"]["index"] = next(
                Path(n).stem for n in sorted(z.namelist()) if "/data/records/" in n)
        # The index's lines name this package's example record; as commands they are the
        # auditor guide's, with record 42 as the example.
        for block in _index_commands(dirs["ws"] / "case.zip"):
            for line in block.splitlines():
                sources.append(("case.zip, data/index.pdf",
                                re.sub(r"\b\d{12}\b", "000000000042", line)))
        unknown = sorted({c for _, c in sources if c not in COMMANDS})
        assert not unknown, f"commands with no entry in COMMANDS: {unknown}"
        for where, cmd in sources:
            used.add(cmd)
            spec = COMMANDS[cmd]
            if isinstance(spec, str):
                continue
            workspace, code, subs = spec
            if cmd in CERTIFYING and not cycle["certifiable"]:
                code = 1
            run = cmd
            for old, new in subs:
                run = run.replace(old, new.format(**cycle["fills"]))
            _before(cmd, cycle, dirs)
            done = _run(run, dirs[workspace], env)
            output = done.stdout + done.stderr
            if done.returncode != code or (cmd in OUTPUT and OUTPUT[cmd] not in output):
                failures.append(f"{where}: `{run}` exited {done.returncode} (expected {code}):"
                                f" {output.strip()[-400:]}")
        # The harness sees a command that does not work: the two the issue found, as the
        # report and the index used to print them.
        for workspace, old in (
                ("pdf", f"sigstore verify identity --bundle B --cert-identity {IDENTITY} "
                        f"--cert-oidc-issuer {ISSUER} --trust-config TRUST.json report.digest"),
                ("ws", "cd case && python -m depository.verifier note tagmanifest.sig "
                       "--key evidence.vkey")):
            assert _run(old, dirs[workspace], env).returncode != 0, old
    assert not failures, "\n".join(failures)
    assert set(COMMANDS) <= used, f"not in any text any more: {sorted(set(COMMANDS) - used)}"
    # Nobody is told to install the unrelated PyPI project of the same name.
    texts = [p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]]
    texts += [_text(cycle["pdf"]), _text(dirs["ws"] / "index.pdf")]
    assert not [t for t in texts if re.search(r"pip install depository\b", t)]
