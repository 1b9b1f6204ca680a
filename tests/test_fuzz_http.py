"""Fuzzing the HTTP inputs — paths, query strings, headers, bodies — through the ASGI
app in-process (Starlette's TestClient; no network).

Requests are mutations of valid ones (names, metadata and provenance headers, JSON
bodies of the management routes, query parameters) and generated hostile ones (percent
escapes, NULs, invalid UTF-8, deep nesting, huge numbers, long values). The property,
for every request: a 2xx, 3xx or 4xx answer, never 5xx; a 4xx problem document is JSON
with a type; no traceback in any answer; done within a bound; nothing written outside
the store directory. Bounded by ``tests/_fuzz.py``.
"""

from __future__ import annotations

import json
import random
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from _fuzz import HOSTILE_BYTES, HOSTILE_TEXT, cases, diff, label, mutate, mutate_json, snapshot
from _fuzz import time_bound as bound
from test_service_support import PRODUCTS, bearer, issue_tokens, make_store

from depository.service import create_app
from depository.store import Store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

_NAMES = ["lessons/l1.txt", "a", "a/b/c.pdf", "x" * 1024, "x" * 1025, "..", "../etc/passwd",
          "a//b", "/lead", "trail/", "%00", "a%00b", "%ff", "a%c0%80b", "%ed%a0%80", "%2F",
          "%25", "spa ce", "ü/ñ.txt", "\u202e.exe", "%", "%zz", "a%0Ab", "?", "#frag", "\t"]
_QUERY = {
    "limit": ["1", "0", "-1", "1000000", "9" * 40, "abc", ""],
    "cursor": ["", "abc", "x" * 5000, "%ff", "eyJ9"],
    "prefix": ["l", "", "%00", "\u00e9", "x" * 3000],
    "meta": ["course=algebra", "course", "=", "a=b=c", "%ff=1", "x" * 2000 + "=1"],
    "since": ["2026-01-01", "yesterday", "9999-99-99", ""],
    "until": ["2026-01-01T00:00:00Z", "-1"],
    "start": ["0", "18446744073709551616", "-5", "1e3"],
    "end": ["1", "9" * 30],
    "index": ["0", "1", "9" * 25], "size": ["1", "0", "18446744073709551615"],
    "first": ["1", "0"], "second": ["2", "99999999999"], "all": ["1", "true", "yes"],
}
_JSON_BODIES: dict[str, dict[str, Any]] = {
    "/v1/holds": {"matter": "M-9", "reason": "fuzz", "product": "gurukul"},
    "/v1/tokens": {"role": "reader", "product": "gurukul", "note": "fuzz",
                   "expires": "2099-01-01T00:00:00Z"},
    "retention": {"until": "2099-01-01T00:00:00Z", "reason": "fuzz"},
    "release": {"reason": "fuzz"},
    "revoke": {"reason": "fuzz"},
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Store, TestClient,
                                                                     dict[str, str]]]:
    root = tmp_path_factory.mktemp("fuzz-http")
    store = make_store(root / "store")
    secrets = issue_tokens(store)
    for p in PRODUCTS:
        store.put(p, "lessons/l1.txt", b"lesson one", metadata={"course": "algebra"},
                  provenance={"author": "t"}, actor="test")
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        yield root, store, client, secrets
    store.close()


def _text(rng: random.Random, valid: str) -> str:
    r = rng.random()
    if r < 0.4:
        return valid
    if r < 0.7:
        return mutate(rng, valid.encode()).decode("utf-8", "replace")
    return rng.choice(HOSTILE_TEXT)


def _header_value(rng: random.Random, valid: str) -> bytes:
    if rng.random() < 0.5:
        return mutate_json(rng, valid).encode("utf-8", "surrogatepass")
    value = rng.choice([*HOSTILE_BYTES, *(t.encode() for t in HOSTILE_TEXT),
                        mutate(rng, valid.encode())])
    return value.replace(b"\r", b"").replace(b"\n", b"")  # a header cannot hold a line break


def _name(rng: random.Random) -> str:
    name = rng.choice(_NAMES)
    if rng.random() < 0.3:
        name = quote(mutate(rng, name.encode()).decode("utf-8", "replace"), safe="/%")
    return name


def _query(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 4)):
        k = rng.choice(list(_QUERY))
        v = rng.choice(_QUERY[k])
        parts.append(f"{k}={quote(v, safe='%=')}")
    return "?" + "&".join(parts) if parts else ""


def _request(rng: random.Random, store: Store, secrets: dict[str, str]
             ) -> tuple[str, str, dict[str, Any], bytes | None]:
    """(method, url, headers, body) of one hostile request."""
    product = rng.choice([*PRODUCTS, *PRODUCTS, *PRODUCTS, "nope", "%ff", "", "GURUKUL"])
    kind = rng.randrange(10)
    # Mostly a token that may do it, so requests get past authorization to the inputs.
    fit = {0: "writer", 1: "writer", 2: "writer", 3: "reader", 4: "reader", 5: "auditor",
           6: "auditor"}.get(kind, "admin")
    fit = f"{fit}:{product}" if f"{fit}:{product}" in secrets else fit
    who = fit if rng.random() < 0.75 and fit in secrets else rng.choice(
        [*secrets, "none", "garbage"])
    headers: dict[str, Any] = {}
    if who == "garbage":
        headers["Authorization"] = rng.choice([b"Bearer ", b"Bearer \xff\xfe", b"Basic x",
                                               b"Bearer " + b"A" * 10_000, b"bearer  x y"])
    elif who != "none":
        headers.update(bearer(secrets[who]))
    aid = rng.choice(["art_x", "", "%00", "a" * 300, "art_" + "z" * 20,
                      *(store.get(p, "lessons/l1.txt").id for p in PRODUCTS[:1])])
    if kind <= 2:  # uploads
        for h, valid in (("Depository-Metadata", '{"course": "algebra", "n": [1, {"k": 2}]}'),
                         ("Depository-Provenance", '{"author": "t-1"}'),
                         ("Depository-Retain-Until", "2099-01-01T00:00:00Z"),
                         ("Content-Type", "text/plain")):
            if rng.random() < 0.5:
                headers[h] = _header_value(rng, valid) if h.endswith(
                    ("Metadata", "Provenance")) else _text(rng, valid).encode(
                    "utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")
        body = rng.choice([b"", b"x", rng.randbytes(rng.randint(1, 70_000))])
        return "PUT", f"/v1/products/{product}/artifacts/{_name(rng)}", headers, body
    if kind == 3:
        return "GET", f"/v1/products/{product}/artifacts{_query(rng)}", headers, None
    if kind == 4:
        route = rng.choice(["artifacts", "metadata"])
        return "GET", f"/v1/products/{product}/{route}/{_name(rng)}{_query(rng)}", headers, None
    if kind == 5:
        path = rng.choice([f"/v1/artifacts/{aid}", f"/v1/artifacts/{aid}/proof",
                           "/v1/log/entries", "/v1/log/inclusion", "/v1/log/consistency",
                           "/v1/log/checkpoint", "/v1/holds", "/v1/tokens", "/v1/governance",
                           "/v1/monitoring", "/v1/monitoring/x", "/v1/evidence/exports/x",
                           "/checkpoint", "/problems/x", "/v1/whoami"])
        return "GET", path + _query(rng), headers, None
    if kind == 6:
        tile = rng.choice(["0/000", "0/x001/002", "1/000.p/7", "entries/000", "0/" + "9" * 40,
                           "-1/000", "0/000.p/0", "../../etc", "%00"])
        return "GET", f"/tile/{tile}", headers, None
    # management routes with JSON bodies
    key = rng.choice(list(_JSON_BODIES))
    path = {"retention": f"/v1/artifacts/{aid}/retention",
            "release": f"/v1/holds/{rng.choice(['h-1', '%ff', 'x' * 500])}/release",
            "revoke": f"/v1/tokens/{rng.choice(['tok-1', '%00', ''])}/revoke"}.get(key, key)
    valid = json.dumps(_JSON_BODIES[key])
    r = rng.random()
    if r < 0.6:
        text = mutate_json(rng, valid).encode("utf-8", "surrogatepass")
    elif r < 0.8:
        text = mutate(rng, valid.encode())
    else:
        text = rng.choice([*HOSTILE_BYTES, b"x" * 70_000])
    headers["Content-Type"] = rng.choice([b"application/json", b"text/plain", b"\xff"])
    return "POST", path, headers, text


def test_fuzz_http(env: tuple[Path, Store, TestClient, dict[str, str]],
                   monkeypatch: pytest.MonkeyPatch) -> None:
    root, store, client, secrets = env
    monkeypatch.chdir(root)  # a relative write by the service would land in the snapshot
    outside = snapshot(root, skip=[root / "store"])
    statuses: set[int] = set()
    for i, rng in cases("http", 400, 10):
        method, url, headers, body = _request(rng, store, secrets)
        where = f"{label('http', i)} {method} {url[:300]!r} {str(headers)[:300]}"
        with bound():
            try:
                r = client.request(method, url, headers=headers, content=body)
            except Exception as exc:  # the client refusing to send it is not the service's
                if type(exc).__module__.startswith(("httpx", "h11")) or (isinstance(
                        exc, (UnicodeError, ValueError)) and "header" in str(exc).lower()):
                    continue
                raise AssertionError(f"{where} raised {exc!r}") from exc
        statuses.add(r.status_code)
        assert r.status_code < 500, f"{where}: {r.status_code} {r.text[:2000]}"
        assert b"Traceback" not in r.content, f"{where}: {r.text[:2000]}"
        if r.headers.get("content-type", "").startswith("application/problem+json"):
            p = r.json()
            assert isinstance(p, dict) and p.get("type") and p.get("detail"), f"{where}: {p}"
    assert not diff(outside, snapshot(root, skip=[root / "store"]))
    assert any(400 <= s < 500 for s in statuses) and any(s < 300 for s in statuses), statuses
    # the service still answers every product's listing afterwards
    for p in PRODUCTS:
        r = client.get(f"/v1/products/{p}/artifacts", headers=bearer(secrets[f"reader:{p}"]))
        assert r.status_code == 200, r.text
