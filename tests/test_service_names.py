"""Names are never silently renamed (issue 15 item 5): a percent-escape that does not
spell UTF-8 (``%ff``, ``%fe``, ``%c0``, an encoded lone surrogate ``%ed%a0%80``) is
refused with a 400 naming the path segment, on every route, instead of turning into
U+FFFD (after which ``a%ffb`` and ``a%feb`` were one name)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_service_support import bearer, issue_tokens, make_store

from depository.service import create_app
from depository.service._paths import check_target
from depository.store import NotFoundError, Store, artifact_id

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BAD = ["a%ffb", "a%feb", "a%c0b", "a%ed%a0%80b", "a%c3", "%80", "a%f4%90%80%80b"]
ARTS = "/v1/products/gurukul/artifacts/"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Store, TestClient, dict[str, str]]]:
    store = make_store(tmp_path / "store")
    secrets = issue_tokens(store)
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        yield store, client, secrets
    store.close()


def _assert_refused(r: Any, segment: str, field: str) -> None:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == "/problems/invalid-parameter"
    assert body["field"] == field
    assert repr(segment) in body["detail"] and "UTF-8" in body["detail"]


@pytest.mark.parametrize("name", BAD)
def test_put_of_a_name_that_is_not_utf8_is_refused_and_nothing_stored(
        env: tuple[Store, TestClient, dict[str, str]], name: str) -> None:
    store, c, s = env
    size = store.size()
    r = c.put(ARTS + name, content=b"x", headers=bearer(s["writer:gurukul"]))
    _assert_refused(r, name, "path:name")
    assert store.size() == size
    with pytest.raises(NotFoundError):
        store.get_by_id(artifact_id("gurukul", "a\ufffdb"))


def test_distinct_bad_names_no_longer_collide(
        env: tuple[Store, TestClient, dict[str, str]]) -> None:
    # Before: PUT a%ffb stored 'a\ufffdb', PUT a%feb got 409, GET a%c0b served a%ffb's bytes.
    _, c, s = env
    w, rd = bearer(s["writer:gurukul"]), bearer(s["reader:gurukul"])
    assert c.put(ARTS + "a%ffb", content=b"first", headers=w).status_code == 400
    assert c.put(ARTS + "a%feb", content=b"second", headers=w).status_code == 400
    assert c.get(ARTS + "a%c0b", headers=rd).status_code == 400
    # A real U+FFFD, correctly encoded, is an ordinary name.
    assert c.put(ARTS + "a%EF%BF%BDb", content=b"real", headers=w).status_code == 201
    assert c.get(ARTS + "a%EF%BF%BDb", headers=rd).content == b"real"
    assert c.get(ARTS + "a%ffb", headers=rd).status_code == 400


@pytest.mark.parametrize("name", BAD)
def test_reads_of_a_name_that_is_not_utf8_are_refused(
        env: tuple[Store, TestClient, dict[str, str]], name: str) -> None:
    _, c, s = env
    rd = bearer(s["reader:gurukul"])
    _assert_refused(c.get(ARTS + name, headers=rd), name, "path:name")
    _assert_refused(c.get("/v1/products/gurukul/metadata/" + name, headers=rd), name,
                    "path:name")
    r = c.head(ARTS + name, headers=rd)
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"


def test_the_segment_at_fault_is_named_in_nested_names_and_other_parameters(
        env: tuple[Store, TestClient, dict[str, str]]) -> None:
    _, c, s = env
    a = bearer(s["admin"])
    _assert_refused(c.get(ARTS + "dir/sub%ff/x.txt", headers=a), "sub%ff", "path:name")
    _assert_refused(c.get("/v1/products/guru%ffkul/artifacts/x", headers=a), "guru%ffkul",
                    "path:product")
    _assert_refused(c.get("/v1/artifacts/art_%ff/proof", headers=a), "art_%ff",
                    "path:artifact_id")
    _assert_refused(c.get("/v1/artifacts/art_%c0", headers=a), "art_%c0", "path:artifact_id")
    _assert_refused(c.post("/v1/holds/h%ed%a0%80/release", headers=a, json={"reason": "r"}),
                    "h%ed%a0%80", "path:hold_id")
    _assert_refused(c.get("/tile/0/x%ff", headers=a), "x%ff", "path:path")
    _assert_refused(c.get("/nowhere/%ff", headers=a), "%ff", "path")


def test_queries_that_are_not_utf8_are_refused(
        env: tuple[Store, TestClient, dict[str, str]]) -> None:
    _, c, s = env
    r = c.get("/v1/products/gurukul/artifacts?prefix=a%ff", headers=bearer(s["admin"]))
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "query:prefix"
    r = c.get("/v1/products/gurukul/artifacts?meta=k%3Dv%c0", headers=bearer(s["admin"]))
    assert r.status_code == 400 and r.json()["field"] == "query:meta"


def test_valid_utf8_and_plain_targets_pass() -> None:
    templates = ["/v1/products/{product}/artifacts/{name:path}"]
    assert check_target(b"/v1/products/p/artifacts/caf%C3%A9/%F0%9F%93%84.txt",
                        b"prefix=caf%C3%A9&x=%2F", templates) is None
    assert check_target(b"/v1/products/p/artifacts/plain.txt", b"", templates) is None
    # Only free-text query values are checked; other parameters refuse junk themselves.
    assert check_target(b"/health", b"x=%ff&limit=%ff", templates) is None
    bad = check_target(b"/v1/products/p/artifacts/x/y%ffz", b"", templates)
    assert bad is not None and bad.field == "path:name" and "'y%ffz'" in bad.detail


def test_on_the_real_server_the_raw_path_is_what_is_checked(tmp_path: Path) -> None:
    # uvicorn decodes the path with errors="replace" before the app sees it; the check
    # must read scope["raw_path"], which the in-process client fills differently.
    from test_service_server import Server

    d = tmp_path / "store"
    with make_store(d) as store:
        token = store.create_token(role="writer", product="gurukul", actor="t")[0]
    srv = Server(d)
    try:
        for name in ("a%ffb", "a%ed%a0%80b"):
            answer = srv.raw(f"PUT {ARTS}{name} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                             f"{token}\r\nContent-Length: 1\r\n\r\n".encode(), body=b"x")
            assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
            assert b'"field":"path:name"' in answer.replace(b" ", b"")
        answer = srv.raw(f"PUT {ARTS}caf%C3%A9 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                         f"{token}\r\nContent-Length: 1\r\n\r\n".encode(), body=b"x")
        assert answer.startswith(b"HTTP/1.1 201 "), answer[:300]
    finally:
        assert srv.stop() == 0
    with Store.open(d) as store:
        assert [a.name for a in store.ls(product="gurukul")] == ["caf\u00e9"]
