"""Helpers shared by the locust users and the runner: parameters, payloads, receipt checks,
the loopback rule. Pure Python; no locust, no gevent.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from depository.store import artifact_id

PARAMS_ENV = "DEPOSITORY_LOADTEST_PARAMS"
# The service's routes the suites use ({product}, {name}, {artifact_id} are filled in).
ROUTES: dict[str, str] = {
    "list": "/v1/products/{product}/artifacts",
    "proof": "/v1/artifacts/{artifact_id}/proof",
    "checkpoint": "/v1/log/checkpoint",
    "health": "/health",
    "alerts": "/v1/monitoring/alerts",
    "storage": "/v1/monitoring/storage",
}
ALLOW_ENV = "DEPOSITORY_LOADTEST_ALLOW_HOSTS"
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


class TargetRefused(ValueError):
    """The target is neither a loopback address nor explicitly allowed."""


def check_target(url: str, allow_hosts: Iterable[str] = ()) -> str:
    """Return the URL's host if load may be sent there, else raise :class:`TargetRefused`.

    Allowed: loopback addresses (127.0.0.0/8, ::1), ``localhost``, and hosts named in
    ``allow_hosts`` or ``$DEPOSITORY_LOADTEST_ALLOW_HOSTS`` (comma separated).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused(f"target {url!r} is not an http(s) URL like http://127.0.0.1:8080")
    host = parts.hostname
    allowed = {h.strip().lower() for h in allow_hosts if h.strip()}
    allowed |= {h.strip().lower() for h in os.environ.get(ALLOW_ENV, "").split(",") if h.strip()}
    if host.lower() in allowed:
        return host
    if host.lower() == "localhost":
        return host
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise TargetRefused(
        f"refusing to send load to {host!r}: only loopback addresses (127.0.0.1, ::1, "
        f"localhost) are allowed unless the host is named with --allow-host or {ALLOW_ENV}"
    )


def resolve_is_reachable(url: str, timeout: float = 2.0) -> str | None:
    """None if a TCP connection to the URL's host and port succeeds, else the reason."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return None
    except OSError as exc:
        return f"cannot connect to {parts.hostname}:{port}: {exc.strerror or exc}"


def load_params(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The run parameters the runner wrote (``$DEPOSITORY_LOADTEST_PARAMS``), or defaults
    for a direct ``locust -f`` run taken from ``DEPOSITORY_TOKEN`` / ``DEPOSITORY_PRODUCT``."""
    where = path or os.environ.get(PARAMS_ENV)
    if where:
        data: dict[str, Any] = json.loads(Path(where).read_text(encoding="utf-8"))
        return data
    token = os.environ.get("DEPOSITORY_TOKEN", "")
    token_file = os.environ.get("DEPOSITORY_TOKEN_FILE")
    if token_file:
        token = Path(token_file).read_text(encoding="utf-8").strip()
    product = os.environ.get("DEPOSITORY_PRODUCT", "gurukul")
    return {
        "run_id": os.environ.get("DEPOSITORY_RUN_ID", f"lt{os.getpid()}"),
        "profile": "quick",
        "products": [product],
        "tokens": {product: {"writer": token, "reader": token}},
        "auditor_token": token,
        "out_dir": os.environ.get("DEPOSITORY_LOADTEST_OUT", "."),
        "limit_params": {},
        "stages": None,
        "seeded_names": {},
        "allow_hosts": [],
    }


def artifact_path(product: str, name: str) -> str:
    from urllib.parse import quote

    return f"/v1/products/{quote(product, safe='')}/artifacts/{quote(name, safe='/')}"


def check_receipt(receipt: Any, *, product: str, name: str, sha256: str, size: int
                  ) -> str | None:
    """None if a PUT receipt is well formed and matches what was sent, else the problem."""
    if not isinstance(receipt, Mapping):
        return "receipt is not a JSON object"
    want_id = artifact_id(product, name)
    if receipt.get("artifact_id") != want_id:
        return f"artifact_id {receipt.get('artifact_id')!r} != derived {want_id!r}"
    if receipt.get("sha256") != sha256:
        return f"sha256 {receipt.get('sha256')!r} != sent {sha256}"
    idx = receipt.get("log_index")
    if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
        return f"log_index {idx!r} is not a non-negative integer"
    lh = receipt.get("leaf_hash")
    if not isinstance(lh, str) or not _HEX64.match(lh):
        return f"leaf_hash {lh!r} is not 64 hex digits"
    if "size" in receipt and receipt["size"] != size:
        return f"size {receipt['size']!r} != sent {size}"
    return None


class PatternStream:
    """A file-like body of ``size`` deterministic bytes generated on the fly.

    Hashes what it hands out, so the sender knows the SHA-256 without holding the bytes.
    ``len()`` gives the size (so HTTP clients send a Content-Length, not chunks).
    """

    def __init__(self, size: int, seed: str, block: int = 1 << 20) -> None:
        self.size = size
        self.sent = 0
        self._hash = hashlib.sha256()
        base = hashlib.sha256(seed.encode()).digest()
        unit = b"".join(hashlib.sha256(base + i.to_bytes(4, "big")).digest()
                        for i in range(block // 32 + 1))
        self._block = unit[:block]
        self._n = 0
        self._cur = memoryview(b"")

    def __len__(self) -> int:
        return self.size

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.sent
        if left <= 0:
            return b""
        if not self._cur:
            # Vary each block by its index so no two blocks of an artifact are equal.
            self._cur = memoryview(self._n.to_bytes(8, "big") + self._block[8:])
            self._n += 1
        want = len(self._cur) if n is None or n < 0 else n
        chunk = bytes(self._cur[:min(want, left)])
        self._cur = self._cur[len(chunk):]
        self.sent += len(chunk)
        self._hash.update(chunk)
        return chunk

    def read_all(self) -> bytes:
        parts = []
        while chunk := self.read():
            parts.append(chunk)
        return b"".join(parts)

    def hexdigest(self) -> str:
        if self.sent != self.size:
            raise ValueError(f"stream not fully read ({self.sent} of {self.size} bytes)")
        return self._hash.hexdigest()


def small_body(run_id: str, user: int, seq: int, size: int) -> bytes:
    """A unique small artifact body of exactly ``size`` bytes (size >= 1)."""
    head = f"{run_id}/{user}/{seq}:".encode()
    if size <= len(head):
        return hashlib.sha256(head).hexdigest().encode()[:max(size, 1)]
    return head + b"." * (size - len(head))


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of ``values`` (sorted or not); None when empty."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def list_items(body: Any) -> list[dict[str, Any]]:
    """The artifacts of a list response (a JSON array, or an object holding one)."""
    items = body
    if isinstance(body, Mapping):
        for key in ("artifacts", "items", "results", "data"):
            if isinstance(body.get(key), list):
                items = body[key]
                break
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ValueError("list response is not a list of artifact objects")
    return [dict(i) for i in items]


def proof_bytes(content: bytes, headers: Mapping[str, str]) -> bytes:
    """The tlog-proof file in a proof response (the body itself, or a JSON field)."""
    ctype = ""
    for k, v in headers.items():
        if k.lower() == "content-type":
            ctype = v
    if "json" in ctype or content[:1] == b"{":
        try:
            data = json.loads(content)
        except ValueError as exc:
            raise ValueError(f"proof response is not JSON: {exc}") from None
        for key in ("tlog_proof", "proof_file", "proof"):
            if isinstance(data, Mapping) and isinstance(data.get(key), str):
                return str(data[key]).encode()
        raise ValueError("proof response has no tlog_proof field")
    return content


def count_proof_hashes(proof: bytes) -> int:
    """Number of hashes in a C2SP tlog-proof@v1 file (raises ValueError if malformed)."""
    lines = proof.split(b"\n")
    if not lines or lines[0] != b"c2sp.org/tlog-proof@v1":
        raise ValueError("not a c2sp.org/tlog-proof@v1 file")
    i = 1
    if i < len(lines) and lines[i].startswith(b"extra "):
        i += 1
    if i >= len(lines) or not lines[i].startswith(b"index "):
        raise ValueError("tlog-proof has no index line")
    n = 0
    for line in lines[i + 1:]:
        if not line:
            break
        n += 1
    return n
