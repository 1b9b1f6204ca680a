"""Regressions for issue 15 (hostile input): items 1, 3, 4 and 6.

1. ``verify store`` must refuse a blob under ``objects/`` that is a FIFO or a link to
   ``/dev/zero``, and read a blob no further than its recorded size (+1).
3. ``verify package`` must refuse JSON nested ~1000 deep in ``items.jsonl`` /
   ``custody.jsonl`` with a finding, not crash with a ``RecursionError``.
4. The store refuses metadata/provenance deeper than 32 or larger than 64 KiB, through
   the library, the CLI and the HTTP API (400), so nothing it accepts breaks a reader.
6. Files named on the command line (``--leaf``, ``--since-checkpoint``, the proof file,
   keys, ``--metadata @FILE``) are read only if regular, and only up to a cap.

Anything that hung before runs in a subprocess with a timeout, so a regression fails
instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from _hostile import Inputs, build, copy_store, export
from click.testing import CliRunner
from test_service_support import bearer, issue_tokens, make_store

from depository.cli import main as cli_main
from depository.service import create_app
from depository.signing import generate_key
from depository.store import MetadataError, Store
from depository.store.limits import METADATA_MAX_BYTES, METADATA_MAX_DEPTH
from depository.tlog import safejson
from depository.verifier.files import MAX_PROOF_FILE_BYTES, InputFileError, read_file
from depository.verifier.package import package_result
from depository.verifier.store import store_result

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TIMEOUT = 60  # seconds: far above the ~1 s these take; a hang fails instead of blocking


@pytest.fixture(scope="module")
def inp(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    return build(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def package(inp: Inputs) -> Path:
    return export(inp)


def _run(args: list[str], *, verifier: bool = True, stdin: int | None = None,
         timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``python -m depository.verifier ARGS`` or ``python -m depository verify ARGS``."""
    entry = ["-m", "depository.verifier"] if verifier else ["-m", "depository", "verify"]
    return subprocess.run([sys.executable, *entry, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=stdin if stdin is not None else subprocess.DEVNULL)


def _clean(proc: subprocess.CompletedProcess[str]) -> str:
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    return out


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _deep(depth: int) -> dict[str, object]:
    """``json.loads(_nested(depth))``, built without recursion (pytest's own stack is too
    deep for json to parse 970 levels here)."""
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    assert isinstance(value, dict)
    return value


# ---------------------------------------------------------------- 1: verify store blobs

@pytest.mark.parametrize("verifier", [True, False], ids=["python-m-verifier", "depository"])
def test_verify_store_refuses_a_fifo_blob(inp: Inputs, tmp_path: Path, verifier: bool) -> None:
    store = copy_store(inp, tmp_path / "store")
    blob = store / inp.file_blob.relative_to(inp.store)
    blob.unlink()
    os.mkfifo(blob)
    proc = _run(["store", str(store), "--key", inp.vkey], verifier=verifier)
    out = _clean(proc)
    assert proc.returncode == 1, out
    assert "FIFO" in out and blob.name in out and "not a regular file" in out, out


def test_verify_store_refuses_a_link_to_dev_zero_with_jobs(inp: Inputs, tmp_path: Path) -> None:
    store = copy_store(inp, tmp_path / "store")
    blob = store / inp.file_blob.relative_to(inp.store)
    blob.unlink()
    blob.symlink_to("/dev/zero")
    proc = _run(["store", str(store), "--key", inp.vkey, "--jobs", "2"])
    out = _clean(proc)
    assert proc.returncode == 1, out
    assert "symbolic link" in out and blob.name in out, out


def test_verify_store_reads_a_blob_no_further_than_its_recorded_size(
        inp: Inputs, tmp_path: Path) -> None:
    """A blob grown to 64 GiB (sparse: zeros past the real bytes) is refused after its
    recorded size + 1 bytes; reading it whole would take minutes."""
    store = copy_store(inp, tmp_path / "store")
    blob = store / inp.file_blob.relative_to(inp.store)
    os.truncate(blob, 64 << 30)
    proc = _run(["store", str(store), "--key", inp.vkey, "--json"])
    out = _clean(proc)
    assert proc.returncode == 1, out
    findings = json.loads(proc.stdout)["findings"]
    assert [f["check"] for f in findings] == ["blob"], findings
    assert f"longer than the {inp.file_blob_size} bytes its record gives" in findings[0][
        "message"], findings


def test_verify_store_library_reports_a_device_blob(inp: Inputs, tmp_path: Path) -> None:
    store = copy_store(inp, tmp_path / "store")
    blob = store / inp.file_blob.relative_to(inp.store)
    blob.unlink()
    blob.symlink_to(inp.file_blob)  # a link to the right bytes is still not a blob file
    res = store_result(store, [inp.vkey])
    assert not res.ok
    assert any(f.check == "blob" and "symbolic link" in f.message for f in res.findings)


def test_verify_store_refuses_a_deep_record_by_measured_depth(inp: Inputs,
                                                               tmp_path: Path) -> None:
    import hashlib
    import sqlite3

    store = copy_store(inp, tmp_path / "store")
    leaf = b'{"a":' * 5000 + b"1" + b"}" * 5000
    conn = sqlite3.connect(store / "depository.db")
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
                            ).fetchall()
    for name, _ in triggers:
        conn.execute(f'DROP TRIGGER "{name}"')
    conn.execute("UPDATE log SET leaf = ?, leaf_hash = ? WHERE idx = 2",
                 (leaf, hashlib.sha256(b"\x00" + leaf).digest()))
    for _, sql in triggers:
        conn.execute(sql)
    conn.commit()
    conn.close()
    res = store_result(store, [inp.vkey])
    assert not res.ok
    assert any(f.check == "record" and f.index == 2 and "nested more than 128 deep" in f.message
               for f in res.findings), res.findings


def test_verify_store_reads_the_store_config_bounded(inp: Inputs, tmp_path: Path) -> None:
    """``depository verify store`` reads depository.yaml (for an S3 backend): a 16 GiB
    one (sparse) is refused by its size instead of read whole."""
    store = copy_store(inp, tmp_path / "store")
    with (store / "depository.yaml").open("r+b") as f:
        f.truncate(16 << 30)
    proc = _run(["store", str(store), "--key", inp.vkey], verifier=False)
    out = _clean(proc)
    assert proc.returncode == 2 and "depository.yaml" in out, out
    assert "larger than the 65536-byte limit for a store configuration" in out, out


# ------------------------------------------------------------- 3: verify package nesting

@pytest.mark.parametrize("member", ["data/items.jsonl", "data/custody.jsonl"])
def test_verify_package_refuses_deep_json_lines(inp: Inputs, package: Path, tmp_path: Path,
                                                member: str) -> None:
    import shutil

    pkg = tmp_path / "pkg"
    shutil.copytree(package, pkg)
    path = pkg / member
    lines = path.read_bytes().splitlines(keepends=True)
    lines[0] = ("[" * 5000 + "]" * 5000 + "\n").encode()
    path.write_bytes(b"".join(lines))
    res = package_result(pkg, [inp.vkey])  # raised RecursionError before
    assert not res.ok
    check = member.split("/")[1].split(".")[0]
    assert any(p.check == check and "nested more than 128 deep" in p.message
               and p.path == f"{member} line 1" for p in res.problems), res.problems
    proc = _run(["package", str(pkg), "--key", inp.vkey])
    out = _clean(proc)
    assert proc.returncode == 1 and "nested more than 128 deep" in out, out


def test_verify_package_item_fields_of_the_wrong_type_are_problems(
        inp: Inputs, package: Path, tmp_path: Path) -> None:
    """Found by the fuzz suite: unhashable values where ids are expected crashed
    ``verify package`` with a TypeError."""
    import shutil

    pkg = tmp_path / "pkg"
    shutil.copytree(package, pkg)
    path = pkg / "data/items.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    item = json.loads(lines[0])
    item["records"], item["holds"] = [[1], {"a": 2}], [["h"], {}]
    lines[0] = (json.dumps(item) + "\n").encode()
    path.write_bytes(b"".join(lines))
    res = package_result(pkg, [inp.vkey])
    messages = [p.message for p in res.problems if p.path and "line 1" in p.path]
    assert any(m.startswith("records [[1], {'a': 2}] are not") for m in messages), messages
    assert any(m.startswith("hold ['h'] has no hold.place record") for m in messages), messages


def test_verify_package_refuses_a_fifo_member(inp: Inputs, package: Path,
                                              tmp_path: Path) -> None:
    import shutil

    pkg = tmp_path / "pkg"
    shutil.copytree(package, pkg)
    (pkg / "data/checkpoint.txt").unlink()
    os.mkfifo(pkg / "data/checkpoint.txt")
    proc = _run(["package", str(pkg), "--key", inp.vkey])
    out = _clean(proc)
    assert proc.returncode == 1 and "data/checkpoint.txt" in out and "not a regular" in out, out


# ------------------------------------------------------------------- 4: metadata limits

def test_store_refuses_metadata_over_the_depth_and_size_limits(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store")
    try:
        size = store.size()
        deep = _deep(970)
        for kw in ({"metadata": deep}, {"provenance": deep},
                   {"metadata": _deep(METADATA_MAX_DEPTH + 1)},
                   {"metadata": {"x": "y" * METADATA_MAX_BYTES}},
                   {"provenance": {"x": "y" * METADATA_MAX_BYTES}},
                   {"metadata": {"x": ["y" * METADATA_MAX_BYTES]}}):
            with pytest.raises(MetadataError) as e:
                store.put("gurukul", "deep/1", b"data", **kw)
            field = next(iter(kw))
            assert str(e.value).startswith(f"artifact 'deep/1' in product 'gurukul': {field} ")
            assert ("nested more than 32 deep" in str(e.value)
                    or f"more than {METADATA_MAX_BYTES} bytes" in str(e.value)), e.value
        assert store.size() == size and store.ls(product="gurukul") == []
        # at the limits exactly: accepted, listed, served
        store.put("gurukul", "ok/1", b"data", metadata=_deep(METADATA_MAX_DEPTH),
                  provenance={"x": "y" * (METADATA_MAX_BYTES - 8)})
        assert [a.name for a in store.ls(product="gurukul")] == ["ok/1"]
    finally:
        store.close()


def test_cli_put_refuses_deep_metadata_and_unreadable_files(tmp_path: Path) -> None:
    make_store(tmp_path / "store").close()
    (tmp_path / "a.txt").write_bytes(b"a")
    (tmp_path / "deep.json").write_text(_nested(40))
    (tmp_path / "deeper.json").write_text(_nested(970))
    runner = CliRunner()
    base = ["put", "--store", str(tmp_path / "store"), "--product", "gurukul", "--name", "n/1"]
    r = runner.invoke(cli_main, [*base, "--metadata", f"@{tmp_path / 'deep.json'}",
                                 str(tmp_path / "a.txt")])
    assert r.exit_code == 1 and "nested more than 32 deep" in r.output, r.output
    r = runner.invoke(cli_main, [*base, "--metadata", f"@{tmp_path / 'deeper.json'}",
                                 str(tmp_path / "a.txt")])
    assert r.exit_code == 2 and "nested more than 128 deep" in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    os.mkfifo(tmp_path / "fifo")
    for bad, why in (("/dev/zero", "character device"), (str(tmp_path / "fifo"), "FIFO")):
        proc = subprocess.run(
            [sys.executable, "-m", "depository", *base, "--metadata", f"@{bad}",
             str(tmp_path / "a.txt")], capture_output=True, text=True, timeout=TIMEOUT)
        out = _clean(proc)
        assert proc.returncode == 2 and why in out, out
    store = Store.open(tmp_path / "store", readonly=True)
    try:
        assert store.ls(product="gurukul") == []
    finally:
        store.close()


@pytest.fixture
def http(tmp_path: Path) -> Iterator[tuple[Store, TestClient, dict[str, str]]]:
    store = make_store(tmp_path / "store")
    secrets = issue_tokens(store)
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        yield store, client, secrets
    store.close()


def test_http_put_with_metadata_nested_970_deep_is_400_and_listings_still_work(
        http: tuple[Store, TestClient, dict[str, str]]) -> None:
    store, c, s = http
    w, rd = bearer(s["writer:gurukul"]), bearer(s["reader:gurukul"])
    assert c.put("/v1/products/gurukul/artifacts/good/1", content=b"ok", headers={
        **w, "Depository-Metadata": '{"course": "algebra"}'}).status_code == 201
    size = store.size()
    for header in ("Depository-Metadata", "Depository-Provenance"):
        r = c.put("/v1/products/gurukul/artifacts/deep/1", content=b"x",
                  headers={**w, header: _nested(970)})
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        p = r.json()
        assert p["field"] == f"header:{header}" and "nested more than 32 deep" in p["detail"], p
    assert store.size() == size
    listing = c.get("/v1/products/gurukul/artifacts", headers=rd)
    assert listing.status_code == 200, listing.text
    assert [i["name"] for i in listing.json()["items"]] == ["good/1"]
    assert c.get("/v1/products/gurukul/artifacts/deep/1", headers=rd).status_code == 404


def test_http_json_bodies_with_a_lone_surrogate_are_400_not_500(
        http: tuple[Store, TestClient, dict[str, str]]) -> None:
    """Found by the fuzz suite: a hold whose matter held ``\\ud800`` reached the log
    encoder and answered 500."""
    store, c, s = http
    size = store.size()
    for path, who, body in (
            ("/v1/holds", "admin", '{"matter": "M-\\ud800", "reason": "r", "product": "gurukul"}'),
            ("/v1/tokens", "admin", '{"role": "reader", "product": "gurukul", '
                                    '"note": "\\udfff"}'),
            ("/v1/holds", "admin", '{"matter": "M", "reason": "r", "product": "gurukul", '
                                   '"\\ud800": 1}')):
        r = c.post(path, content=body.encode(), headers={**bearer(s[who]),
                                                        "Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert "lone surrogate" in r.json()["detail"], r.text
    deep = '{"matter": "M", "reason": "r", "product": "gurukul", "x": ' + "[" * 5000 + (
        "]" * 5000 + "}")
    r = c.post("/v1/holds", content=deep.encode(), headers={**bearer(s["admin"])})
    assert r.status_code == 400 and "nested more than 128 deep" in r.json()["detail"], r.text
    assert store.size() == size


# ----------------------------------------------------------- 6: unbounded command-line reads

@pytest.mark.parametrize("verifier", [True, False], ids=["python-m-verifier", "depository"])
def test_leaf_from_dev_zero_fails_fast(inp: Inputs, verifier: bool) -> None:
    proc = _run(["proof", str(inp.proof), "--leaf", "/dev/zero", "--key", inp.vkey],
                verifier=verifier)
    out = _clean(proc)
    assert proc.returncode == 2 and "/dev/zero: a character device" in out, out


@pytest.mark.parametrize("verifier", [True, False], ids=["python-m-verifier", "depository"])
def test_since_checkpoint_from_dev_zero_fails_fast(inp: Inputs, verifier: bool) -> None:
    proc = _run(["store", str(inp.store), "--key", inp.vkey, "--since-checkpoint", "/dev/zero"],
                verifier=verifier)
    out = _clean(proc)
    assert proc.returncode == 2 and "/dev/zero: a character device" in out, out


@pytest.mark.parametrize("verifier", [True, False], ids=["python-m-verifier", "depository"])
def test_a_fifo_as_the_proof_file_fails_fast(inp: Inputs, tmp_path: Path,
                                             verifier: bool) -> None:
    fifo = tmp_path / "proof.fifo"
    os.mkfifo(fifo)
    for args in (["proof", str(fifo), "--leaf", str(inp.leaf), "--key", inp.vkey],
                 ["note", str(fifo), "--key", inp.vkey],
                 ["consistency", "--size1", "1", "--size2", "2", "--root1", inp.root1,
                  "--root2", inp.root2, "--proof", str(fifo)],
                 ["proof", str(inp.proof), "--leaf", str(inp.leaf), "--key", f"@{fifo}"],
                 ["package", str(fifo), "--key", inp.vkey])[:None if verifier else 1]:
        proc = _run(args, verifier=verifier)
        out = _clean(proc)
        assert proc.returncode == 2 and "FIFO (named pipe), not a regular file" in out, out


def test_a_five_million_line_proof_file_is_refused_without_reading_it(
        inp: Inputs, tmp_path: Path) -> None:
    big = tmp_path / "big.tlog-proof"
    line = b"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    with big.open("wb") as f:
        f.write(b"c2sp.org/tlog-proof@v1\nindex 1\n")
        f.write(line * 5_000_000)  # 225 MB
    proc = _run(["proof", str(big), "--leaf", str(inp.leaf), "--key", inp.vkey], timeout=20)
    out = _clean(proc)
    assert proc.returncode == 2, out
    assert f"larger than the {MAX_PROOF_FILE_BYTES}-byte limit for a tlog-proof file" in out
    # the same from an endless pipe: stops after the cap instead of reading forever
    yes = subprocess.Popen(["yes", line.decode().strip()], stdout=subprocess.PIPE)
    try:
        assert yes.stdout is not None
        proc = _run(["proof", "-", "--leaf", str(inp.leaf), "--key", inp.vkey],
                    stdin=yes.stdout.fileno(), timeout=20)
    finally:
        yes.kill()
        yes.wait()
    out = _clean(proc)
    assert proc.returncode == 2 and "standard input: larger than" in out, out


def test_read_file_refuses_non_regular_files_and_stops_at_the_cap(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InputFileError, match="FIFO"):
        read_file(str(tmp_path / "fifo"), limit=10)
    with pytest.raises(InputFileError, match="a directory"):
        read_file(str(tmp_path), limit=10)
    with pytest.raises(InputFileError, match="no such file"):
        read_file(str(tmp_path / "missing"), limit=10)
    (tmp_path / "f").write_bytes(b"x" * 11)
    with pytest.raises(InputFileError, match="11 bytes, larger than the 10-byte limit"):
        read_file(str(tmp_path / "f"), limit=10)
    assert read_file(str(tmp_path / "f"), limit=11) == b"x" * 11
    (tmp_path / "link").symlink_to(tmp_path / "f")
    assert read_file(str(tmp_path / "link"), limit=11) == b"x" * 11
    with pytest.raises(InputFileError, match="symbolic link"):
        read_file(str(tmp_path / "link"), limit=11, follow_symlinks=False)


# ----------------------------------------------------------------- the JSON depth guard

def test_safejson_refuses_by_measured_depth_not_by_recursion() -> None:
    assert safejson.loads('{"a": "[[[[{{{{"}') == {"a": "[[[[{{{{"}
    assert safejson.loads(_nested(128)) is not None
    for text in (_nested(129), "[" * 10_000, "[" * 1_000_000 + "]" * 1_000_000,
                 '["\\"]", ' + "[" * 200):
        with pytest.raises(safejson.JSONLimitError) as e:
            safejson.loads(text)
        assert e.value.depth == 129 and "nested more than 128 deep" in str(e.value)
    with pytest.raises(ValueError, match="Unterminated string"):  # brackets in a string
        safejson.loads('[["\\"' + "[" * 200)
    with pytest.raises(safejson.JSONLimitError, match="12 bytes; the limit is 11"):
        safejson.loads(b'{"a": "bcd"}', max_bytes=11)
    assert safejson.text_depth('["]]]]", {"k": [[]]}]') == 4
    assert safejson.value_depth({"a": [{"b": 1}], "c": []}) == 3
    with pytest.raises(safejson.JSONLimitError, match="more than 3 deep"):
        safejson.check_value([[[[1]]]], max_depth=3, max_bytes=100)
    with pytest.raises(safejson.JSONLimitError, match="more than 10 bytes"):
        safejson.check_value({"k": "é" * 5}, max_depth=3, max_bytes=10)
    value = {"k": ["é\n\"", 1, None, True, False, -7, {"x": []}]}
    exact = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    safejson.check_value(value, max_depth=4, max_bytes=exact)
    with pytest.raises(safejson.JSONLimitError):
        safejson.check_value(value, max_depth=4, max_bytes=exact - 1)


def test_load_results_files_are_read_bounded(tmp_path: Path) -> None:
    """A certification's load-results file: a FIFO is refused (not waited on), JSON
    nested 100,000 deep is refused by depth (not a RecursionError)."""
    from _fuzz import time_bound

    from depository.certification.loadresults import ResultsError, read_results

    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with time_bound(20):
        with pytest.raises(ResultsError, match="FIFO"):
            read_results(tmp_path / "fifo.json")
        with pytest.raises(ResultsError, match="nested more than 128 deep"):
            read_results(tmp_path / "deep.json")


def test_service_load_results_readers_are_bounded(tmp_path: Path) -> None:
    # The monitoring views and the dashboard read a configured results.json: a FIFO there
    # must not hang a request, and a deep or oversized file is refused, not parsed.
    import threading

    from depository.service import _dashboard_data, _monitoring

    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    deep = tmp_path / "deep.json"
    deep.write_text('{"limits": ' + "[" * 5000 + "]" * 5000 + "}")
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(_monitoring.RESULTS_MAX + 1)
    for path in (fifo, deep, big):
        got: list[tuple[object, dict[str, object]]] = []

        def read(p: Path = path, out: list[tuple[object, dict[str, object]]] = got) -> None:
            out.append((_monitoring.read_load_results(p), _dashboard_data.read_load_results(p)))

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(10)
        assert got, f"reading {path.name} hung"
        views, dash = got[0]
        assert views is None
        assert dash["state"] == "unreadable" and str(path) in str(dash["detail"]), dash
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps({"limits": [], "profile": "quick"}))
    assert _monitoring.read_load_results(ok)["profile"] == "quick"
    assert _dashboard_data.read_load_results(ok)["state"] == "read"


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_verify_package_reports_a_damaged_deflate_stream(tmp_path: Path, damage: str) -> None:
    # Found by the fuzz suite: a member whose deflate stream ends early raised a bare
    # EOFError out of `verify package` (a corrupt one, zlib.error). Both are findings.
    import subprocess
    import sys
    import zipfile

    from depository.signing import generate_key

    text = b"".join(b"BagIt-Version: 1.0 line %d\n" % i for i in range(4000))
    pkg = tmp_path / "pkg.zip"
    with zipfile.ZipFile(pkg, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data/items.jsonl", text)
        z.writestr("bagit.txt", text)  # last: its data runs into the central directory
    raw = bytearray(pkg.read_bytes())
    with zipfile.ZipFile(pkg) as z:
        info = z.getinfo("bagit.txt")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    if damage == "truncated":  # a 65,535-byte stored block, and a directory claiming
        # more compressed bytes than the file holds: the stream ends before its end
        raw[start:start + 5] = b"\x00\xff\xff\x00\x00"
        cd = bytes(raw).rindex(b"PK\x01\x02")  # bagit.txt's central directory entry
        raw[cd + 20:cd + 24] = (len(raw) * 4).to_bytes(4, "little")
    else:  # block type 3 is reserved: zlib refuses the stream
        raw[start] = 0x07
    pkg.write_bytes(bytes(raw))
    _, vkey = generate_key("hostile.example/depository")
    proc = subprocess.run([sys.executable, "-m", "depository.verifier", "package", str(pkg),
                           "--key", vkey], capture_output=True, text=True, timeout=60)
    assert proc.returncode in (1, 2), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Error()" not in proc.stdout + proc.stderr


# ----------------------------------------------------------------- certification reports

@pytest.mark.parametrize("verb", ["verify", "status"])
def test_certify_refuses_a_fifo_as_the_report(tmp_path: Path, verb: str) -> None:
    """The report was read whole with ``read_bytes``: a FIFO blocked it for ever."""
    fifo = tmp_path / "report.pdf"
    os.mkfifo(fifo)
    cli = Path(sys.executable).with_name("depository")
    key = ["--key", generate_key("log.example")[1]] if verb == "verify" else []
    proc = subprocess.run([str(cli), "certify", verb, str(fifo), *key],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not a regular file" in proc.stderr or "FIFO" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_certify_verify_reports_deep_embedded_json(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An embedded report.json nested 100,000 deep is a finding, not a RecursionError."""
    from depository.certification import verify as cv

    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.7\n%%EOF\n")
    deep = safejson.MAX_DEPTH * 800
    blob = (b"[" * deep + b"]" * deep)
    names = ("report.json", "checkpoint.txt", "loadtest-results.json", "signoffs.json",
             "report.digest")
    monkeypatch.setattr(cv, "_embedded", lambda data: {n: (blob, "Data") for n in names})
    outcome = cv.verify_report(pdf)
    assert outcome.verdict == "NOT AUTHENTIC"
    assert any("report.json" in p and "nested more than" in p for p in outcome.problems), \
        outcome.problems
    with pytest.raises(ValueError, match="nested more than"):
        cv.report_status(pdf)
