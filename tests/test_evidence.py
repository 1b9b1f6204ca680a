"""Evidence packages: export, offline verification, tamper drill, holds, isolation.

One store is built per module (two products, inline and file blobs, a write-once
refusal, a retention extension and a refused shortening, holds for three matters, one
released, and a disposal run at a far-future date). Packages are exported from it once
and each tamper case edits a fresh copy of a package on disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bagit
import pytest
from click.testing import CliRunner
from conftest import Clock

from depository.cli._evidence import evidence
from depository.evidence import EvidenceError, export_package
from depository.evidence._dat import FIELDS, QUOTE, SEPARATOR
from depository.store import RetentionError, Store, WriteOnceError, parse_time
from depository.store.config import default_config_dict
from depository.tlog.record import parse_record
from depository.verifier.package import (
    PackageInputError,
    PackageVerificationError,
    package_outcome,
    package_result,
    verify_package,
)

ORIGIN = "evidence.example/log"
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
EXPORT_TIME = datetime(2100, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Built:
    path: Path
    vkey: str
    aid: dict[str, str]
    holds: dict[str, str]
    disposed: list[int]
    m1_zip: Path
    m1_dir: Path
    m2_dir: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("evidence")
    cfg = default_config_dict(ORIGIN)
    cfg["default_retention_days"] = 30
    clock = Clock(datetime(2026, 1, 1, tzinfo=UTC))
    store = Store.init(root / "store", config=cfg, clock=clock)
    aid: dict[str, str] = {}
    try:
        for i, (name, data) in enumerate([
            ("lessons/l1.pdf", b"lesson one"),
            ("lessons/video-2.mp4", os.urandom(100_000)),  # above inline_max: a blob file
            ("lessons/l3.txt", b"lesson three\n"),
            ("lessons/l4.txt", b"lesson four\n"),
            ("lessons/l5.txt", b"lesson five\n"),
        ], 1):
            r = store.put("gurukul", name, data, metadata={"course": "algebra", "n": i},
                          provenance={"author": f"teacher-{i}"}, actor="cli:writer")
            aid[f"g{i}"] = r.artifact_id
        aid["o1"] = store.put("ai-avatar", "avatars/secret.png", b"OTHER-PRODUCT-BYTES",
                              metadata={"kind": "avatar"}).artifact_id
        with pytest.raises(WriteOnceError):
            store.put("gurukul", "lessons/video-2.mp4", b"a different body")
        store.extend_retention("gurukul", aid["g3"], datetime(2030, 1, 1, tzinfo=UTC),
                               actor="legal:ann", reason="audit")
        with pytest.raises(RetentionError):
            store.extend_retention("gurukul", aid["g3"], datetime(2029, 1, 1, tzinfo=UTC),
                                   actor="cli:bob", reason="shorten")
        h1 = store.place_hold(matter="M-1", reason="subpoena 24-17", actor="legal:ann",
                              artifact_ids=[aid["g1"], aid["g2"], aid["g3"]])
        h2 = store.place_hold(matter="M-2", reason="regulator inquiry", actor="legal:ann",
                              product="gurukul")
        hx = store.place_hold(matter="M-X", reason="two products", actor="legal:ann",
                              artifact_ids=[aid["g4"]])
        hy = store.place_hold(matter="M-X", reason="two products", actor="legal:ann",
                              artifact_ids=[aid["o1"]])
        store.release_hold(h2.id, reason="inquiry closed", actor="legal:ann")
        # Years later every retention has run out; only the holds keep artifacts.
        clock.now = FAR_FUTURE
        disposed = store.dispose(FAR_FUTURE, actor="depository")
        m1_zip = root / "case-M-1.zip"
        m1_dir = root / "case-M-1"
        m2_dir = root / "case-M-2"
        export_package(store, matter="M-1", out=m1_zip, reason="production to counsel",
                       actor="legal:ann", now=EXPORT_TIME, load_file="dat")
        export_package(store, matter="M-1", out=m1_dir, reason="production to counsel",
                       actor="legal:ann", now=EXPORT_TIME, load_file="dat")
        export_package(store, matter="M-2", out=m2_dir, reason="regulator",
                       actor="legal:ann", now=EXPORT_TIME, index_limit=2)
        vkey = store.verifier_key
    finally:
        store.close()
    return Built(root / "store", vkey, aid, {"h1": h1.id, "h2": h2.id, "hx": hx.id,
                                             "hy": hy.id}, disposed, m1_zip, m1_dir, m2_dir)


def _items(pkg: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (pkg / "data/items.jsonl").read_text().splitlines()]


def _paths(res: Any) -> list[str]:
    return [p.path or "" for p in res.problems]


# ------------------------------------------------------------------------ happy path


def test_packages_verify(built: Built) -> None:
    for pkg in (built.m1_zip, built.m1_dir, built.m2_dir):
        res = package_result(pkg, [built.vkey])
        assert res.ok, [str(p) for p in res.problems]
        verify_package(pkg, [built.vkey])
    res = package_result(built.m1_zip, [built.vkey])
    assert res.summary["matter"] == "M-1" and res.summary["product"] == "gurukul"
    assert res.summary["artifacts"] == 3 and res.summary["disposed"] == 0
    assert any("tag manifest signed by" in c for c in res.checks)


def test_bagit_reference_implementation_accepts_the_bag(built: Built) -> None:
    bag = bagit.Bag(str(built.m1_dir))
    bag.validate(fast=False)  # full: every payload file re-hashed, both manifests
    assert set(bag.algorithms) == {"sha256", "sha512"}
    assert bag.info["Depository-Matter"] == "M-1"
    assert bag.info["Source-Organization"] == ORIGIN
    for label in ("Bagging-Date", "Payload-Oxum", "Depository-Export-Time",
                  "Depository-Exporter", "Depository-Artifacts", "Depository-Records"):
        assert label in bag.info


def test_package_layout_and_contents(built: Built) -> None:
    pkg = built.m1_dir
    names = sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*") if p.is_file())
    for required in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt",
                     "tagmanifest-sha256.txt", "tagmanifest-sha512.txt", "tagmanifest.sig",
                     "data/items.jsonl", "data/custody.jsonl", "data/checkpoint.txt",
                     "data/log.vkey", "data/evidence.vkey", "data/index.pdf",
                     "data/loadfile.dat"):
        assert required in names
    items = _items(pkg)
    assert [i["artifact_id"] for i in items] == [built.aid["g1"], built.aid["g2"],
                                                  built.aid["g3"]]
    g2 = items[1]
    assert g2["path"].endswith(".mp4")
    assert hashlib.sha256((pkg / "data" / g2["path"]).read_bytes()).hexdigest() == g2["sha256"]
    # every record is the exact leaf, and each has its proof
    records = [n for n in names if n.startswith("data/records/")]
    proofs = [n for n in names if n.startswith("data/proofs/")]
    assert len(records) == len(proofs)
    types = [parse_record((pkg / r).read_bytes()).type for r in records]
    for t in ("artifact.put", "artifact.refused", "retention.extend", "retention.refused",
              "hold.place", "hold.release", "evidence.export"):
        assert t in types
    # the items list the holds that touch them, of any matter, released or not
    assert built.holds["h1"] in items[0]["holds"] and built.holds["h2"] in items[0]["holds"]
    assert items[2]["retain_until"] == "2030-01-01T00:00:00.000000Z"
    custody = [json.loads(x) for x in (pkg / "data/custody.jsonl").read_text().splitlines()]
    assert custody[0]["actor"] == "legal:ann" and custody[0]["reason"] == "production to counsel"
    assert custody[0]["tool_version"] and custody[0]["time"] == "2100-03-01T12:00:00.000000Z"


def test_export_is_recorded_in_the_log(built: Built) -> None:
    with Store.open(built.path, readonly=True) as s:
        exports = [parse_record(leaf) for _, leaf in s.log_entries(0, s.size())
                   if b'"evidence.export"' in leaf]
    assert len(exports) == 3
    first = exports[0]
    assert first.actor == "legal:ann" and first.product == "gurukul"
    assert first.body["matter"] == "M-1" and first.body["artifacts"] == 3
    info = bagit.Bag(str(built.m1_dir)).info
    assert int(info["Depository-Export-Log-Index"]) == exports[1].seq


def test_held_artifacts_survive_disposal_and_export(built: Built) -> None:
    """M-1's hold blocked disposal after retention ran out; the export has their bytes."""
    with Store.open(built.path, readonly=True) as s:
        for key in ("g1", "g2", "g3"):
            assert not s.get_by_id(built.aid[key]).disposed
        assert s.get_by_id(built.aid["g5"]).disposed
    assert len(built.disposed) == 1  # g5 only: released M-2 hold, no other hold
    for item in _items(built.m1_dir):
        assert item["disposed"] is False
        assert (built.m1_dir / "data" / item["path"]).is_file()


def test_disposed_artifacts_appear_as_their_records(built: Built) -> None:
    items = {i["artifact_id"]: i for i in _items(built.m2_dir)}
    assert set(items) == {built.aid[f"g{i}"] for i in range(1, 6)}
    g5 = items[built.aid["g5"]]
    assert g5["disposed"] is True and g5["path"] is None
    disposal = parse_record((built.m2_dir / "data/records" /
                             f"{g5['disposal_index']:012d}.json").read_bytes())
    assert disposal.type == "artifact.dispose" and disposal.body["artifact_id"] == g5[
        "artifact_id"]
    assert g5["disposal_index"] in g5["records"]
    assert not any(built.aid["g5"] in p.name for p in (built.m2_dir / "data/artifacts").iterdir())


def test_isolation_nothing_of_another_product(built: Built) -> None:
    with Store.open(built.path, readonly=True) as s:
        other = s.get_by_id(built.aid["o1"])
    needles = [b"ai-avatar", built.aid["o1"].encode(), other.sha256.encode(), b"secret.png",
               b"OTHER-PRODUCT-BYTES", built.holds["hy"].encode()]
    for pkg in (built.m1_dir, built.m2_dir):
        for path in pkg.rglob("*"):
            if path.is_file() and path.suffix != ".pdf":
                data = path.read_bytes()
                for needle in needles:
                    assert needle not in data, f"{needle!r} leaked into {path}"
    text = _pdftotext(built.m2_dir / "data/index.pdf")
    if text is not None:
        assert "ai-avatar" not in text and "secret.png" not in text
    for rec in (built.m2_dir / "data/records").iterdir():
        assert parse_record(rec.read_bytes()).product == "gurukul"


def test_matter_spanning_products_needs_product(built: Built, tmp_path: Path) -> None:
    with Store.open(built.path) as s:
        with pytest.raises(EvidenceError, match="spans products ai-avatar, gurukul"):
            export_package(s, matter="M-X", out=tmp_path / "x.zip", reason="r", actor="a")
        assert not any(tmp_path.iterdir())  # nothing written, no partial files
        res = export_package(s, matter="M-X", product="ai-avatar", out=tmp_path / "y",
                             reason="r", actor="legal:ann")
        assert res.artifacts == 1 and res.product == "ai-avatar"
        vkey = s.verifier_key
    assert package_result(tmp_path / "y", [vkey]).ok
    assert b"gurukul" not in (tmp_path / "y" / "data/items.jsonl").read_bytes()


def test_selection_options(built: Built, tmp_path: Path) -> None:
    with Store.open(built.path) as s:
        res = export_package(s, matter="M-3", artifact_ids=[built.aid["g4"]],
                             out=tmp_path / "a", reason="r", actor="legal:ann",
                             evidence_key_file=None)
        assert res.artifacts == 1
        g3_created = parse_time(s.get_by_id(built.aid["g3"]).created)
        res = export_package(s, matter="M-2", hold_ids=[built.holds["h2"]],
                             since=datetime(2026, 1, 1, tzinfo=UTC), until=g3_created,
                             out=tmp_path / "b", reason="r", actor="legal:ann")
        assert res.artifacts == 2  # g1, g2: created before g3
        with pytest.raises(EvidenceError, match="belongs to matter"):
            export_package(s, matter="M-1", hold_ids=[built.holds["h2"]], out=tmp_path / "c",
                           reason="r", actor="a")
        # A hold of another product must not fall through to "all of --product".
        with pytest.raises(EvidenceError, match="is not in product 'ai-avatar'"):
            export_package(s, matter="M-X", hold_ids=[built.holds["hx"]], product="ai-avatar",
                           out=tmp_path / "c", reason="r", actor="a")
        with pytest.raises(EvidenceError, match="no legal holds"):
            export_package(s, matter="M-none", out=tmp_path / "d", reason="r", actor="a")
        with pytest.raises(EvidenceError, match="no legal hold in product"):
            export_package(s, matter="M-1", product="ai-avatar", out=tmp_path / "d",
                           reason="r", actor="a")
        with pytest.raises(EvidenceError, match="already exists"):
            export_package(s, matter="M-1", out=tmp_path / "a", reason="r", actor="a")
        with pytest.raises(EvidenceError, match="reason"):
            export_package(s, matter="M-1", out=tmp_path / "e", reason=" ", actor="a")
        vkey = s.verifier_key
    for name in ("a", "b"):
        assert package_result(tmp_path / name, [vkey]).ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_evidence_key_created_once_and_pinned(built: Built, tmp_path: Path) -> None:
    key = built.path / "keys/evidence.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    vkey = (built.path / "keys/evidence.vkey").read_text().strip()
    assert vkey.startswith(f"{ORIGIN}/evidence+")
    assert package_result(built.m1_zip, [built.vkey], evidence_keys=[vkey]).ok
    from depository.signing import generate_key

    _, other = generate_key(f"{ORIGIN}/evidence")
    res = package_result(built.m1_zip, [built.vkey], evidence_keys=[other])
    assert not res.ok and "tagmanifest.sig" in _paths(res)
    _, wrong_log = generate_key(ORIGIN)
    res = package_result(built.m1_zip, [wrong_log])
    assert not res.ok and "data/checkpoint.txt" in _paths(res)


def test_load_file_is_concordance_dat(built: Built) -> None:
    raw = (built.m1_dir / "data/loadfile.dat").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = raw[3:].decode("utf-8").split("\r\n")
    assert lines[-1] == ""
    rows = [[c.strip(QUOTE) for c in line.split(SEPARATOR)] for line in lines[:-1]]
    assert rows[0] == list(FIELDS) and len(rows) == 4
    col = {f: i for i, f in enumerate(FIELDS)}
    for row, item in zip(rows[1:], _items(built.m1_dir), strict=True):
        assert row[col["SHA256"]] == item["sha256"]
        native = built.m1_dir / "data" / row[col["NATIVEPATH"]].replace("\\", "/")
        assert hashlib.md5(native.read_bytes()).hexdigest() == row[col["MD5"]]
        assert row[col["FILENAME"]] == item["name"].rsplit("/", 1)[-1]


def _pdftotext(path: Path) -> str | None:
    if shutil.which("pdftotext") is None:
        return None
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                          capture_output=True, text=True).stdout


def test_index_pdf_is_pdfa_with_items_and_guide(built: Built) -> None:
    pdf = built.m1_dir / "data/index.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    text = _pdftotext(pdf)
    if text is None:
        pytest.skip("poppler-utils not installed")
    assert "M-1" in text and "lessons/l1.pdf" in text and "How to verify this package" in text
    for item in _items(built.m1_dir):
        assert item["sha256"] in text.replace("\n", "").replace(" ", "") or item[
            "sha256"][:32] in text
    meta = subprocess.run(["pdfinfo", "-meta", str(pdf)], check=True, capture_output=True,
                          text=True).stdout
    assert 'pdfaid:part="3"' in meta and 'pdfaid:conformance="B"' in meta
    fonts = subprocess.run(["pdffonts", str(pdf)], check=True, capture_output=True,
                           text=True).stdout.splitlines()[2:]
    assert fonts and all(" yes " in f for f in fonts)  # every font embedded
    m2 = _pdftotext(built.m2_dir / "data/index.pdf")
    assert m2 is not None and "and 3 more items" in m2


# ------------------------------------------------------------------------ tamper drill


def _edit(path: Path, fn: Callable[[bytes], bytes]) -> None:
    path.chmod(0o644)
    path.write_bytes(fn(path.read_bytes()))


def _first(pkg: Path, pattern: str) -> Path:
    return sorted(pkg.glob(pattern))[0]


def _flip_line(data: bytes, line_no: int) -> bytes:
    lines = data.split(b"\n")
    line = lines[line_no]
    lines[line_no] = line[:-5] + bytes([line[-5] ^ 1]) + line[-4:]
    return b"\n".join(lines)


def _proof_line(data: bytes) -> bytes:
    lines = data.split(b"\n")
    i = lines.index(next(x for x in lines if x.startswith(b"index "))) + 1
    import base64

    h = bytearray(base64.b64decode(lines[i]))
    h[0] ^= 1
    lines[i] = base64.b64encode(bytes(h))
    return b"\n".join(lines)


def _metadata_line(data: bytes) -> bytes:
    lines = data.split(b"\n")
    item = json.loads(lines[1])
    item["metadata"]["course"] = "geometry"
    lines[1] = json.dumps(item, sort_keys=True, separators=(",", ":")).encode()
    return b"\n".join(lines)


TAMPERS: dict[str, tuple[str, Callable[[Path], str]]] = {}


def _case(name: str, expect_check: str) -> Callable[[Callable[[Path], str]],
                                                     Callable[[Path], str]]:
    def deco(fn: Callable[[Path], str]) -> Callable[[Path], str]:
        TAMPERS[name] = (expect_check, fn)
        return fn
    return deco


@_case("artifact", "artifact")
def _t_artifact(pkg: Path) -> str:
    p = _first(pkg, "data/artifacts/*")
    _edit(p, lambda d: d[:-1] + bytes([d[-1] ^ 1]))
    return p.relative_to(pkg).as_posix()


@_case("metadata line", "items")
def _t_metadata(pkg: Path) -> str:
    _edit(pkg / "data/items.jsonl", _metadata_line)
    return "data/items.jsonl line 2"


@_case("proof line", "proof")
def _t_proof(pkg: Path) -> str:
    p = _first(pkg, "data/proofs/*")
    _edit(p, _proof_line)
    return p.relative_to(pkg).as_posix()


@_case("record", "proof")
def _t_record(pkg: Path) -> str:
    p = _first(pkg, "data/records/*")
    _edit(p, lambda d: d.replace(b'"actor":"', b'"actor":"X', 1))
    return p.relative_to(pkg).as_posix()


@_case("checkpoint", "checkpoint")
def _t_checkpoint(pkg: Path) -> str:
    _edit(pkg / "data/checkpoint.txt", lambda d: _flip_line(d, 2))
    return "data/checkpoint.txt"


@_case("custody log", "custody")
def _t_custody(pkg: Path) -> str:
    _edit(pkg / "data/custody.jsonl", lambda d: d.replace(b"legal:ann", b"legal:eve"))
    return "data/custody.jsonl"


@_case("payload manifest", "manifest")
def _t_manifest(pkg: Path) -> str:
    _edit(pkg / "manifest-sha256.txt", lambda d: _flip_line(d, 0))
    return "manifest-sha256.txt"


@_case("tag manifest", "signature")
def _t_tag_manifest(pkg: Path) -> str:
    _edit(pkg / "tagmanifest-sha256.txt", lambda d: _flip_line(d, 0))
    return "tagmanifest.sig"


@_case("bag-info", "tag-manifest")
def _t_bag_info(pkg: Path) -> str:
    _edit(pkg / "bag-info.txt", lambda d: d.replace(b"Depository-Matter: M-1",
                                                    b"Depository-Matter: M-9"))
    return "bag-info.txt"


@_case("signature", "signature")
def _t_signature(pkg: Path) -> str:
    _edit(pkg / "tagmanifest.sig", lambda d: d[:-10] + (b"A" if d[-10:-9] != b"A" else b"B")
          + d[-9:])
    return "tagmanifest.sig"


@_case("index.pdf", "manifest")
def _t_pdf(pkg: Path) -> str:
    _edit(pkg / "data/index.pdf", lambda d: d + b"%")
    return "data/index.pdf"


@_case("added payload file", "manifest")
def _t_add(pkg: Path) -> str:
    (pkg / "data/artifacts/extra.txt").write_bytes(b"smuggled")
    return "data/artifacts/extra.txt"


@_case("added tag file", "tag-manifest")
def _t_add_tag(pkg: Path) -> str:
    (pkg / "notes.txt").write_bytes(b"smuggled")
    return "notes.txt"


@_case("removed artifact", "manifest")
def _t_remove(pkg: Path) -> str:
    p = _first(pkg, "data/artifacts/*")
    p.unlink()
    return p.relative_to(pkg).as_posix()


@_case("removed record and proof", "export")
def _t_remove_record(pkg: Path) -> str:
    rec = sorted(pkg.glob("data/records/*"))[-2]
    rec.unlink()
    (pkg / "data/proofs" / rec.name.replace(".json", ".tlog-proof")).unlink()
    return "data/records/"


@_case("removed tag file", "tag-manifest")
def _t_remove_tag(pkg: Path) -> str:
    (pkg / "bag-info.txt").unlink()
    return "bag-info.txt"


@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_tamper_is_caught_and_named(built: Built, tmp_path: Path, kind: str) -> None:
    pkg = tmp_path / "pkg"
    shutil.copytree(built.m1_dir, pkg)
    assert package_result(pkg, [built.vkey]).ok
    check, fn = TAMPERS[kind]
    where = fn(pkg)
    res = package_result(pkg, [built.vkey])
    assert not res.ok
    named = [p for p in res.problems if (p.path or "").startswith(where)]
    assert named, f"{where} not named: {[str(p) for p in res.problems]}"
    assert any(p.check == check for p in res.problems), [str(p) for p in res.problems]
    with pytest.raises(PackageVerificationError, match=where.split(" ")[0]):
        verify_package(pkg, [built.vkey])


def _rewrite_zip(src: Path, dst: Path, edit: Callable[[str, bytes], bytes | None],
                 extra: Sequence[tuple[zipfile.ZipInfo, bytes]] = ()) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info, data)
        for info, data in extra:
            zout.writestr(info, data)


def test_tampered_zip_is_caught(built: Built, tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"

    def edit(name: str, data: bytes) -> bytes:
        return data.replace(b"legal:ann", b"legal:eve") if name.endswith("custody.jsonl") else data

    _rewrite_zip(built.m1_zip, bad, edit)
    res = package_result(bad, [built.vkey])
    assert not res.ok and "data/custody.jsonl" in _paths(res)


def test_unsafe_zip_entries_are_refused(built: Built, tmp_path: Path) -> None:
    bad = tmp_path / "unsafe.zip"
    link = zipfile.ZipInfo("case-M-1/data/link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    _rewrite_zip(built.m1_zip, bad, lambda n, d: d, [
        (zipfile.ZipInfo("case-M-1/../../evil.txt"), b"x"),
        (zipfile.ZipInfo("/etc/evil"), b"x"),
        (link, b"/etc/passwd"),
    ])
    res = package_result(bad, [built.vkey])
    assert not res.ok
    unsafe = [p for p in res.problems if p.check == "unsafe"]
    assert len(unsafe) == 3, [str(p) for p in res.problems]
    assert not (tmp_path.parent / "evil.txt").exists()


def test_symlink_in_directory_package_is_refused(built: Built, tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    shutil.copytree(built.m1_dir, pkg)
    os.symlink("/etc/passwd", pkg / "data/artifacts/link")
    res = package_result(pkg, [built.vkey])
    assert not res.ok and any(p.check == "unsafe" and p.path == "data/artifacts/link"
                              for p in res.problems)


def test_unreadable_input(built: Built, tmp_path: Path) -> None:
    with pytest.raises(PackageInputError):
        package_result(tmp_path / "missing.zip", [built.vkey])
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(PackageInputError):
        package_result(tmp_path / "junk.zip", [built.vkey])


# ------------------------------------------------------------------------ CLI and verb


def test_cli_export_and_package_outcome(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "cli.zip"
    runner = CliRunner()
    result = runner.invoke(evidence, [
        "export", "--store", str(built.path), "--matter", "M-1", "--reason", "court order",
        "--actor", "legal:cli", "--load-file", "dat", "--out", str(out), "--json",
    ])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["artifacts"] == 3 and data["path"] == str(out)
    vkey_file = tmp_path / "log.vkey"
    vkey_file.write_text(built.vkey + "\n")
    outcome = package_outcome(str(out), [str(vkey_file)])
    assert outcome.ok and outcome.exit_code == 0
    assert "VERIFIED (package)" in outcome.human()
    assert json.loads(json.dumps(outcome.to_json()))["verified"] is True
    bad = tmp_path / "bad.zip"
    _rewrite_zip(out, bad, lambda n, d: d + b"x" if n.endswith("loadfile.dat") else d)
    outcome = package_outcome(str(bad), [built.vkey])
    assert not outcome.ok and outcome.exit_code == 1
    assert "data/loadfile.dat" in (outcome.error or "")
    from depository.verifier.commands import UsageError

    with pytest.raises(UsageError):
        package_outcome(str(tmp_path / "nope.zip"), [built.vkey])
    again = runner.invoke(evidence, [
        "export", "--store", str(built.path), "--matter", "M-1", "--reason", "again",
        "--out", str(out)])
    assert again.exit_code == 1 and "already exists" in again.output
    help_text = runner.invoke(evidence, ["export", "--help"]).output
    assert "Example:" in help_text


def test_verifier_reads_zip_without_extracting(built: Built, tmp_path: Path) -> None:
    """A zip is verified in place: nothing is written next to it or in the temp dir."""
    copy = tmp_path / "case.zip"
    shutil.copy(built.m1_zip, copy)
    before = set(os.listdir(tmp_path))
    assert package_result(copy, [built.vkey]).ok
    assert set(os.listdir(tmp_path)) == before
    with zipfile.ZipFile(copy) as zf:
        names = zf.namelist()
    assert all(n.startswith("case-M-1/") for n in names)
    assert names == sorted(names, key=lambda n: names.index(n))  # stable order
    again = io.BytesIO(copy.read_bytes())
    assert zipfile.ZipFile(again).testzip() is None
