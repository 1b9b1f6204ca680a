"""Independent checks of a report PDF for the tests: PDF/A-3b structure and page layout.

veraPDF (a Java tool) is not installable here, so ``pdfa3b_problems`` reads the file with
poppler (``pdfinfo``) and pyHanko's low-level reader and checks these clauses of
ISO 19005-3 (PDF/A-3; numbering as in ISO 19005-2):

* 6.1.2 file header: ``%PDF-1.n`` with n <= 7 at byte 0, then a comment of four bytes
  above 127; and the version a reader uses (the catalog's ``/Version`` overrides the
  header) is at most 1.7: PDF/A-3 is based on ISO 32000-1 (PDF 1.7), so no revision may
  declare PDF 2.0 or register a developer extension based on it;
* 6.1.3 file trailer: an ``/ID``, no ``/Encrypt``;
* 6.6.2.1 a catalog ``/Metadata`` XMP stream;
* 6.6.3 each document information entry with an XMP analogue has an equivalent value:
  Title = dc:title, Author = dc:creator, Subject = dc:description, Keywords = pdf:Keywords,
  Creator = xmp:CreatorTool, Producer = pdf:Producer, CreationDate = xmp:CreateDate,
  ModDate = xmp:ModifyDate (the same instant);
* 6.6.4 version identification: pdfaid:part 3, pdfaid:conformance B;
* 6.8 embedded files: each file specification has ``/F``, ``/UF`` and
  ``/AFRelationship``, its stream a ``/Subtype`` (MIME type), and is listed in ``/AF``.

``text_boxes`` and ``layout_problems`` use ``pdftotext -bbox-layout`` (poppler).
"""

from __future__ import annotations

import io
import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["Box", "layout_problems", "pdfa3b_problems", "text_boxes"]

_PUNCT = re.compile(r"[.,:;!?()\[\]'\"…]+")

_NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "pdf": "http://ns.adobe.com/pdf/1.3/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "pdfaid": "http://www.aiim.org/pdfa/ns/id/",
}


def _xmp_values(xmp: str) -> dict[str, str]:
    """Simple XMP properties, attribute or element form, by ``prefix:Name``."""
    root = ET.fromstring(xmp.split("?>", 1)[1].rsplit("<?xpacket", 1)[0])
    out: dict[str, str] = {}
    rev = {v: k for k, v in _NS.items()}
    for desc in root.iter(f"{{{_NS['rdf']}}}Description"):
        for name, value in desc.attrib.items():
            ns, _, local = name[1:].partition("}")
            if ns in rev:
                out[f"{rev[ns]}:{local}"] = value
        for child in desc:
            ns, _, local = child.tag[1:].partition("}")
            if ns not in rev:
                continue
            lis = list(child.iter(f"{{{_NS['rdf']}}}li"))
            out[f"{rev[ns]}:{local}"] = (lis[0].text if lis else child.text) or ""
    return out


def _pdf_date(value: str) -> datetime:
    m = re.fullmatch(r"D:(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(Z|[+-]\d\d'?\d\d'?)?'?",
                     value.strip())
    if not m:
        raise ValueError(f"not a PDF date: {value!r}")
    tz = (m[7] or "Z").replace("'", "")
    tz = "+00:00" if tz == "Z" else f"{tz[:3]}:{tz[3:]}"
    return datetime.fromisoformat(f"{m[1]}-{m[2]}-{m[3]}T{m[4]}:{m[5]}:{m[6]}{tz}")


def pdfa3b_problems(pdf: Path) -> list[str]:
    """Every PDF/A-3b structural problem found (empty when none)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    data = pdf.read_bytes()
    problems: list[str] = []
    header = re.match(rb"%PDF-1\.([0-7])\r?\n%([\x80-\xff]{4})", data)
    if not header:
        problems.append(f"6.1.2: header {data[:16]!r} is not %PDF-1.0..1.7 plus a binary "
                        "comment")
    info = subprocess.run(["pdfinfo", "-isodates", str(pdf)], capture_output=True,
                          text=True, check=True).stdout
    version = re.search(r"^PDF version:\s+(\S+)", info, re.M)
    if not version or version[1] > "1.7":
        problems.append(f"6.1.2: a reader sees PDF {version[1] if version else '?'}: "
                        "PDF/A-3 is PDF 1.7")
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    root = reader.root
    if "/Version" in root and str(root["/Version"]).lstrip("/") > "1.7":
        problems.append(f"6.1.2: the catalog declares /Version {root['/Version']}")
    for prefix, ext in dict(root.get("/Extensions", {})).items():
        for e in (ext if isinstance(ext, list) else [ext]):
            base = str(e.get_object().get("/BaseVersion", "")).lstrip("/")
            if base > "1.7":
                problems.append(f"6.1.2: developer extension {prefix} is based on PDF {base}")
    if "/ID" not in reader.trailer:
        problems.append("6.1.3: the trailer has no /ID")
    if "/Encrypt" in reader.trailer:
        problems.append("6.1.3: the file is encrypted")
    if "/Metadata" not in root:
        return [*problems, "6.6.2.1: the catalog has no /Metadata stream"]
    xmp = _xmp_values(root["/Metadata"].get_object().data.decode("utf-8"))
    doc_info = reader.trailer["/Info"].get_object() if "/Info" in reader.trailer else {}
    pairs = {"/Title": "dc:title", "/Author": "dc:creator", "/Subject": "dc:description",
             "/Keywords": "pdf:Keywords", "/Creator": "xmp:CreatorTool",
             "/Producer": "pdf:Producer", "/CreationDate": "xmp:CreateDate",
             "/ModDate": "xmp:ModifyDate"}
    for key, prop in pairs.items():
        if key not in doc_info:
            continue
        value = str(doc_info[key])
        if prop not in xmp:
            problems.append(f"6.6.3: Info {key} {value!r} has no XMP {prop}")
        elif key.endswith("Date"):
            if _pdf_date(value) != datetime.fromisoformat(xmp[prop].replace("Z", "+00:00")):
                problems.append(f"6.6.3: Info {key} {value!r} differs from XMP {prop} "
                                f"{xmp[prop]!r}")
        elif value != xmp[prop]:
            problems.append(f"6.6.3: Info {key} {value!r} differs from XMP {prop} "
                            f"{xmp[prop]!r}")
    if (xmp.get("pdfaid:part"), xmp.get("pdfaid:conformance")) != ("3", "B"):
        problems.append(f"6.6.4: pdfaid part {xmp.get('pdfaid:part')!r} conformance "
                        f"{xmp.get('pdfaid:conformance')!r}, not 3 / B")
    af_raw = root.raw_get("/AF") if "/AF" in root else []
    af_list = af_raw.get_object() if hasattr(af_raw, "get_object") else af_raw
    af = {(r.idnum, r.generation) for r in list.__iter__(af_list) if hasattr(r, "idnum")}
    names = root["/Names"]["/EmbeddedFiles"].get_object() if "/Names" in root and \
        "/EmbeddedFiles" in root["/Names"] else None

    def specs(node: Any) -> list[Any]:
        node = node.get_object()
        found = []
        arr = node.raw_get("/Names") if "/Names" in node else []
        for i in range(1, len(arr), 2):
            found.append(arr[i])
        for kid in node.get("/Kids", []):
            found += specs(kid)
        return found

    for ref in specs(names) if names is not None else []:
        spec = ref.get_object()
        name = str(spec.get("/UF", spec.get("/F", "?")))
        for key in ("/F", "/UF", "/AFRelationship"):
            if key not in spec:
                problems.append(f"6.8: embedded file {name} has no {key}")
        if "/Subtype" not in spec["/EF"]["/F"].get_object():
            problems.append(f"6.8: embedded file {name} has no MIME /Subtype")
        if hasattr(ref, "idnum") and (ref.idnum, ref.generation) not in af:
            problems.append(f"6.8: embedded file {name} is not in the catalog's /AF")
    return problems


@dataclass(frozen=True)
class Box:
    page: int
    x0: float
    y0: float
    x1: float
    y1: float
    text: str


def text_boxes(pdf: Path) -> tuple[list[tuple[float, float]], list[Box]]:
    """Page sizes and every word's box, from ``pdftotext -bbox-layout``."""
    out = subprocess.run(["pdftotext", "-bbox-layout", str(pdf), "-"], capture_output=True,
                         check=True).stdout.decode()
    ns = "{http://www.w3.org/1999/xhtml}"
    root = ET.fromstring(out)
    sizes: list[tuple[float, float]] = []
    boxes: list[Box] = []
    for n, page in enumerate(root.iter(f"{ns}page"), 1):
        sizes.append((float(page.get("width", 0)), float(page.get("height", 0))))
        for w in page.iter(f"{ns}word"):
            boxes.append(Box(n, float(w.get("xMin", 0)), float(w.get("yMin", 0)),
                             float(w.get("xMax", 0)), float(w.get("yMax", 0)), w.text or ""))
    return sizes, boxes


def layout_problems(pdf: Path, margin_x: float) -> list[str]:
    """Words outside the page's horizontal margins, printed over or running into another.

    Two words collide when their boxes overlap, or are less than 0.5 pt apart, across and
    by more than half the smaller one's height (line boxes of adjacent lines touch; text
    printed over text covers most of it)."""
    sizes, boxes = text_boxes(pdf)
    problems = []
    for b in boxes:
        width, height = sizes[b.page - 1]
        if b.x0 < margin_x - 1 or b.x1 > width - margin_x + 1 or b.y0 < 0 or b.y1 > height:
            problems.append(f"p.{b.page}: {b.text[:40]!r} at x {b.x0:.0f}..{b.x1:.0f} leaves "
                            f"the text area ({margin_x:.0f}..{width - margin_x:.0f})")
    by_band: dict[tuple[int, int], list[Box]] = {}
    for b in boxes:
        for band in range(int(b.y0 // 10), int(b.y1 // 10) + 1):
            by_band.setdefault((b.page, band), []).append(b)
    seen = set()
    for group in by_band.values():
        group.sort(key=lambda b: b.x0)
        for i, a in enumerate(group):
            for c in group[i + 1:]:
                if c.x0 >= a.x1 + 0.5:
                    break
                dx = min(a.x1, c.x1) - max(a.x0, c.x0)
                dy = min(a.y1, c.y1) - max(a.y0, c.y0)
                # pdftotext joins glyphs less than a space apart into one word unless the
                # font changes: two words on one line (nearly) touching are two cells' texts
                # running into each other, unless one is punctuation after a code span.
                touching = dx <= 1
                if touching and (_PUNCT.fullmatch(a.text) or _PUNCT.fullmatch(c.text)):
                    continue
                if dx > -0.5 and dy > 0.5 * min(a.y1 - a.y0, c.y1 - c.y0) \
                        and (a, c) not in seen:
                    seen.add((a, c))
                    problems.append(f"p.{a.page}: {a.text[:30]!r} and {c.text[:30]!r} are "
                                    f"printed over each other at y {a.y0:.0f}")
    return problems
