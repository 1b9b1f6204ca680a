"""Locust users for the load suites (this module imports locust: never import it from
the runner, the CLI or the tests; locust files import it in locust's own process).

Every response is validated; a response that is not what the API promises is a failure
in locust's statistics. Besides locust's own statistics, the users keep, in memory, one
row per request and one row per acknowledged write, and write them when locust exits:

- ``requests.csv``: ``t,name,latency_ms,status,ok`` (``t`` = completion time, seconds
  since the test started);
- ``acks.jsonl``: one JSON object per acknowledged write (product, name, artifact_id,
  sha256, size, log_index, status);
- ``extra.json``: counters and facts a suite records (hash checks, refusals, proof sizes).

Parameters come from the JSON file named by ``$DEPOSITORY_LOADTEST_PARAMS`` (the runner
writes it); without it, ``$DEPOSITORY_TOKEN`` (or ``$DEPOSITORY_TOKEN_FILE``) and
``$DEPOSITORY_PRODUCT`` configure a direct ``locust -f`` run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import gevent  # type: ignore[import-untyped]
from locust import FastHttpUser, constant, constant_throughput, events, task
from locust.env import Environment

from depository.loadtests import common
from depository.store import artifact_id

PARAMS: dict[str, Any] = common.load_params()
LP: dict[str, Any] = dict(PARAMS.get("limit_params") or {})
ROUTES: dict[str, str] = dict(PARAMS.get("routes") or common.ROUTES)


class Recorder:
    """Per-request rows, acknowledged writes and counters, written at exit."""

    def __init__(self) -> None:
        self.t0 = time.time()
        self.rows: list[tuple[float, str, float, int, int]] = []
        self.acks: list[dict[str, Any]] = []
        self.counters: Counter[str] = Counter()
        self.facts: dict[str, Any] = {}
        self.lists: dict[str, list[Any]] = {}
        self.written = False

    def add(self, key: str, value: Any) -> None:
        self.lists.setdefault(key, []).append(value)

    def write(self, out_dir: Path) -> None:
        if self.written:
            return
        self.written = True
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / "requests.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["t", "name", "latency_ms", "status", "ok"])
            for t, name, ms, status, ok in self.rows:
                w.writerow([f"{t:.4f}", name, f"{ms:.3f}", status, ok])
        with open(out_dir / "acks.jsonl", "w") as f:
            for a in self.acks:
                f.write(json.dumps(a, sort_keys=True) + "\n")
        extra = {"counters": dict(self.counters), "facts": self.facts, "lists": self.lists,
                 "t0": self.t0, "requests": len(self.rows), "acks": len(self.acks)}
        (out_dir / "extra.json").write_text(json.dumps(extra, indent=1, sort_keys=True))


REC = Recorder()


def _out_dir() -> Path:
    return Path(PARAMS.get("out_dir") or ".")


def _on_test_start(environment: Environment, **_kw: Any) -> None:
    REC.t0 = time.time()
    host = environment.host or ""
    try:
        common.check_target(host, PARAMS.get("allow_hosts") or ())
    except common.TargetRefused as exc:
        print(f"depository-loadtest: {exc}", file=sys.stderr, flush=True)
        REC.facts["refused_target"] = str(exc)
        if environment.runner is not None:
            environment.runner.quit()
        return
    gevent.spawn(_progress, environment)


def _progress(environment: Environment) -> None:
    """One ``DEPOSITORY-PROGRESS {json}`` line per second on stdout, for the runner."""
    while True:
        gevent.sleep(1.0)
        runner = environment.runner
        if runner is None:
            return
        total = environment.stats.total
        line = {
            "t": round(time.time() - REC.t0, 1), "users": runner.user_count,
            "requests": total.num_requests, "failures": total.num_failures,
            "rps": round(total.current_rps, 1), "acks": len(REC.acks),
            # this process's CPU seconds: the runner tells a step limited by the load
            # generator (one gevent loop, at most one core) from one limited by the server
            "cpu": round(time.process_time(), 3),
        }
        print("DEPOSITORY-PROGRESS " + json.dumps(line), flush=True)


def _on_request(request_type: str, name: str, response_time: float, response: Any = None,
                exception: Any = None, start_time: float | None = None, **_kw: Any) -> None:
    status = int(getattr(response, "status_code", 0) or 0)
    started = start_time if start_time is not None else time.time() - response_time / 1000
    done = started + response_time / 1000 - REC.t0
    REC.rows.append((done, name, float(response_time), status, 0 if exception else 1))


def _on_quitting(environment: Environment, **_kw: Any) -> None:
    REC.write(_out_dir())


def _on_test_stop(environment: Environment, **_kw: Any) -> None:
    REC.write(_out_dir())


events.test_start.add_listener(_on_test_start)  # type: ignore[no-untyped-call]
events.request.add_listener(_on_request)  # type: ignore[no-untyped-call]
events.test_stop.add_listener(_on_test_stop)  # type: ignore[no-untyped-call]
events.quitting.add_listener(_on_quitting)  # type: ignore[no-untyped-call]


def _wait_time() -> Any:
    pace = LP.get("rate_per_user")
    return constant_throughput(float(pace)) if pace else constant(0)


class _Base(FastHttpUser):
    """Shared plumbing: tokens, products, a PUT that validates its receipt."""

    abstract = True
    network_timeout = float(LP.get("network_timeout", 120.0))
    connection_timeout = 10.0
    _next_id = 0

    def on_start(self) -> None:
        _Base._next_id += 1
        self.uid = _Base._next_id
        self.seq = 0
        products: list[str] = list(PARAMS["products"])
        self.product = products[(self.uid - 1) % len(products)]

    def token(self, product: str, role: str = "writer") -> str:
        tokens = PARAMS["tokens"].get(product) or {}
        tok = tokens.get(role) or tokens.get("writer") or ""
        return str(tok)

    def auth(self, product: str | None, role: str = "writer") -> dict[str, str]:
        tok = self.token(product, role) if product else str(PARAMS.get("auditor_token") or "")
        return {"Authorization": f"Bearer {tok}"}

    def new_name(self, prefix: str = "w") -> str:
        self.seq += 1
        return f"lt/{PARAMS['run_id']}/{prefix}/u{self.uid:04d}/{self.seq:07d}"

    def put(self, product: str, name: str, body: bytes | common.PatternStream, *,
            label: str = "PUT artifact", expect: tuple[int, ...] = (201,),
            meta: dict[str, Any] | None = None, record: bool = True) -> dict[str, Any] | None:
        """PUT and validate; returns the receipt (or error body) on an expected status."""
        size = len(body)
        sha = hashlib.sha256(body).hexdigest() if isinstance(body, bytes) else None
        headers = self.auth(product)
        headers["Content-Type"] = "application/octet-stream"
        headers["Depository-Metadata"] = json.dumps(
            meta if meta is not None else {"lt": PARAMS["run_id"], "k": str(self.seq % 10)})
        headers["Depository-Provenance"] = json.dumps({"load": "depository-loadtest",
                                                       "user": self.uid})
        with self.client.request("PUT", common.artifact_path(product, name), data=body,  # type: ignore[arg-type]
                                 headers=headers, name=label, catch_response=True) as resp:
            status = int(resp.status_code or 0)
            if isinstance(body, common.PatternStream):
                if body.sent != body.size:
                    resp.failure(f"body not fully sent ({body.sent} of {body.size} bytes)")
                    return None
                sha = body.hexdigest()
            assert sha is not None
            if status not in expect:
                REC.counters[f"status_{status}"] += 1
                resp.failure(f"HTTP {status} (expected {expect}): {_snippet(resp)}")
                return None
            try:
                data = json.loads(resp.content or b"null")
            except ValueError:
                resp.failure(f"HTTP {status}: body is not JSON: {_snippet(resp)}")
                return None
            if status in (200, 201):
                problem = common.check_receipt(data, product=product, name=name, sha256=sha,
                                               size=size)
                if problem:
                    REC.counters["bad_receipts"] += 1
                    resp.failure(f"bad receipt: {problem}")
                    return None
                if record:
                    REC.acks.append({
                        "product": product, "name": name, "artifact_id": data["artifact_id"],
                        "sha256": sha, "size": size, "log_index": data["log_index"],
                        "status": status, "created": data.get("created"),
                        "retain_until": data.get("retain_until"),
                    })
            elif not isinstance(data, dict):
                resp.failure(f"HTTP {status}: error body is not a JSON object")
                return None
            resp.success()
            return data if isinstance(data, dict) else None


def _snippet(resp: Any) -> str:
    try:
        return (resp.content or b"")[:200].decode("utf-8", "replace")
    except Exception:
        return "(no body)"


class Writer(_Base):
    """Writes small unique artifacts back to back (or paced: ``rate_per_user``)."""

    wait_time = _wait_time()

    @task
    def write(self) -> None:
        name = self.new_name()
        size = int(LP.get("write_size", 1024))
        self.put(self.product, name, common.small_body(PARAMS["run_id"], self.uid, self.seq,
                                                       size))


class LargeUploader(_Base):
    """Streams artifacts of ``size`` bytes, checks the stored hash by reading them back."""

    wait_time = constant(0)

    @task
    def upload(self) -> None:
        done = REC.counters["uploads_done"]
        if done >= int(LP.get("uploads", 1)):
            self._finish()
            return
        size = int(LP["size"])
        name = self.new_name("big")
        stream = common.PatternStream(size, f"{PARAMS['run_id']}/{name}")
        t = time.perf_counter()
        receipt = self.put(self.product, name, stream, label="PUT large artifact")
        up_s = time.perf_counter() - t
        REC.counters["uploads_done"] += 1
        if receipt is None:
            return
        REC.add("upload_seconds", up_s)
        sha = stream.hexdigest()
        t = time.perf_counter()
        h = hashlib.sha256()
        n = 0
        with self.client.request("GET", common.artifact_path(self.product, name),
                                 headers=self.auth(self.product, "reader"), stream=True,
                                 name="GET large artifact", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"read-back HTTP {resp.status_code}")
                return
            for chunk in resp.iter_content(chunk_size=1 << 20, decode_content=False):
                h.update(chunk)
                n += len(chunk)
            down_s = time.perf_counter() - t
            if n != size or h.hexdigest() != sha:
                REC.counters["hash_mismatches"] += 1
                resp.failure(f"read back {n} bytes with sha256 {h.hexdigest()}, "
                             f"sent {size} with {sha}")
                return
            resp.success()
        REC.counters["hash_verified"] += 1
        REC.add("download_seconds", down_s)

    def _finish(self) -> None:
        if LP.get("oversize_check") and not REC.facts.get("oversize_checked"):
            REC.facts["oversize_checked"] = True
            size = int(LP["max_size"]) + 1
            name = self.new_name("over")
            stream = common.PatternStream(size, name)
            headers = self.auth(self.product)
            # Ask before sending the body: a server that refuses on Content-Length answers
            # 413 without reading 500 MB first.
            headers["Expect"] = "100-continue"
            try:
                with self.client.request("PUT", common.artifact_path(self.product, name),
                                         data=stream,  # type: ignore[arg-type]
                                         headers=headers, name="PUT oversize",
                                         catch_response=True) as resp:
                    REC.facts["oversize_status"] = int(resp.status_code or 0)
                    if resp.status_code == 413:
                        resp.success()
                    else:
                        resp.failure(f"oversize upload got HTTP {resp.status_code}, not 413")
            except Exception as exc:  # the server may close the connection after 413
                REC.facts["oversize_status"] = f"connection closed: {exc}"
        if self.environment.runner is not None:
            self.environment.runner.quit()


class MixedWriter(_Base):
    """Mixed sizes over several products, identical re-uploads (200) and conflicting
    re-uploads (409), for the byte-exact accounting check."""

    wait_time = constant(0)

    def on_start(self) -> None:
        super().on_start()
        self.rng = random.Random(f"{PARAMS['run_id']}/{self.uid}")
        self.mine: list[tuple[str, str, bytes, int]] = []

    @task
    def write(self) -> None:
        r = self.rng.random()
        if self.mine and r < 0.05:
            product, name, body, idx = self.rng.choice(self.mine)
            data = self.put(product, name, body, label="PUT identical (200)", expect=(200,),
                            record=False)
            if data is not None:
                REC.counters["duplicates_ok"] += 1
                if data.get("log_index") != idx:
                    REC.counters["duplicate_index_mismatch"] += 1
            return
        if self.mine and r < 0.08:
            product, name, body, _ = self.rng.choice(self.mine)
            data = self.put(product, name, body + b"!", label="PUT conflicting (409)",
                            expect=(409,), record=False)
            if data is not None:
                REC.counters["conflicts_refused"] += 1
            return
        product = self.rng.choice(list(PARAMS["products"]))
        if self.rng.random() < 0.7:
            size = self.rng.randint(0, 16 * 1024)
        else:
            size = self.rng.randint(100 * 1024, int(LP.get("max_file", 2 * 1024 * 1024)))
        name = self.new_name("mix")
        body = common.PatternStream(size, name).read_all() if size else b""
        data = self.put(product, name, body, label="PUT mixed")
        if data is not None and size < 64 * 1024:
            self.mine.append((product, name, body, int(data["log_index"])))
            if len(self.mine) > 50:
                self.mine.pop(0)


class QuotaFiller(_Base):
    """Fills the quota product past its limit: refusals must be clean (507/429)."""

    wait_time = constant(0)

    @task
    def fill(self) -> None:
        product = str(PARAMS["quota_product"])
        if REC.counters["quota_refusals"] >= int(LP.get("refusals_wanted", 12)):
            if self.environment.runner is not None:
                self.environment.runner.quit()
            return
        name = self.new_name("quota")
        size = int(LP["quota_write"])
        body = common.small_body(PARAMS["run_id"], self.uid, self.seq, size)
        data = self.put(product, name, body, label="PUT quota fill", expect=(201, 507, 429))
        if data is None:
            return
        if "artifact_id" in data and "log_index" in data:
            self.poll_alerts()
            return
        REC.counters["quota_refusals"] += 1
        REC.add("quota_refusal_bodies", data)


    def poll_alerts(self) -> None:
        """Read the alerts view after each write, so every level crossing is seen."""
        token = PARAMS.get("admin_token") or PARAMS.get("auditor_token") or ""
        with self.client.request("GET", ROUTES["alerts"], name="alerts view",
                                 headers={"Authorization": f"Bearer {token}"},
                                 catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"alerts view: HTTP {resp.status_code}: {_snippet(resp)}")
            else:
                resp.success()


class Querier(_Base):
    """The query mix: list by product, name prefix, time range, metadata field; content by
    name; inclusion proof by artifact id. Every answer is checked against its filter."""

    wait_time = constant(0)

    def on_start(self) -> None:
        super().on_start()
        self.rng = random.Random(f"q{self.uid}")
        seeded: dict[str, list[str]] = PARAMS.get("seeded_names") or {}
        self.seeded = {p: names for p, names in seeded.items() if names}
        if not self.seeded:
            raise RuntimeError("the query suite needs seeded_names in its parameters")

    def _pick(self) -> tuple[str, str]:
        product = self.rng.choice(sorted(self.seeded))
        return product, self.rng.choice(self.seeded[product])

    def _list(self, product: str, label: str, query: dict[str, str],
              check: Any = None) -> None:
        url = ROUTES["list"].format(product=product) + "?" + urlencode(query)
        with self.client.request("GET", url, headers=self.auth(product, "reader"), name=label,
                                 catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {_snippet(resp)}")
                return
            try:
                items = common.list_items(json.loads(resp.content or b"null"))
            except ValueError as exc:
                resp.failure(str(exc))
                return
            for item in items:
                if item.get("product", product) != product:
                    resp.failure(f"item of product {item.get('product')!r} in {product}")
                    return
                problem = check(item) if check else None
                if problem:
                    resp.failure(problem)
                    return
            if not items and LP.get("expect_hits", True) and label != "list time range":
                resp.failure(f"no results for {query}")
                return
            resp.success()

    @task(3)
    def by_product(self) -> None:
        product, _ = self._pick()
        self._list(product, "list by product", {"limit": "100"})

    @task(3)
    def by_prefix(self) -> None:
        product, name = self._pick()
        prefix = name[: max(1, len(name) - 2)]
        self._list(product, "list name prefix", {"prefix": prefix, "limit": "100"},
                   lambda it: None if str(it.get("name", "")).startswith(prefix)
                   else f"name {it.get('name')!r} outside prefix {prefix!r}")

    @task(2)
    def by_time(self) -> None:
        product, _ = self._pick()
        lo, hi = PARAMS.get("time_window") or ["2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z"]
        self._list(product, "list time range", {"since": lo, "until": hi, "limit": "100"},
                   lambda it: None if lo <= str(it.get("created", lo)) < hi
                   else f"created {it.get('created')} outside [{lo}, {hi})")

    @task(2)
    def by_meta(self) -> None:
        product, _ = self._pick()
        k = str(self.rng.randrange(10))
        self._list(product, "list metadata field", {"meta": f"k={k}", "limit": "100"},
                   lambda it: None if "metadata" not in it
                   or str(it["metadata"].get("k")) == k
                   else f"metadata k={it['metadata'].get('k')!r}, asked {k}")

    @task(1)
    def content(self) -> None:
        product, name = self._pick()
        with self.client.request("GET", common.artifact_path(product, name),
                                 headers=self.auth(product, "reader"), name="GET content",
                                 catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {_snippet(resp)}")
            else:
                resp.success()

    @task(2)
    def proof(self) -> None:
        product, name = self._pick()
        fetch_proof(self, product, artifact_id(product, name), "proof by artifact id")


def fetch_proof(user: _Base, product: str, aid: str, label: str) -> bytes | None:
    url = ROUTES["proof"].format(product=product, artifact_id=aid)
    with user.client.request("GET", url, headers=user.auth(product, "reader"), name=label,
                             catch_response=True) as resp:
        if resp.status_code != 200:
            resp.failure(f"HTTP {resp.status_code}: {_snippet(resp)}")
            return None
        try:
            proof = common.proof_bytes(resp.content or b"", resp.headers or {})
            hashes = common.count_proof_hashes(proof)
        except ValueError as exc:
            resp.failure(str(exc))
            return None
        resp.success()
        REC.add("proof_hashes", hashes)
        REC.add("proof_bytes", len(proof))
        return proof


class Prover(_Base):
    """Fetches inclusion proofs of random seeded artifacts and checks their form."""

    wait_time = constant(0)

    def on_start(self) -> None:
        super().on_start()
        self.rng = random.Random(f"p{self.uid}")
        self.seeded: dict[str, list[str]] = {
            p: n for p, n in (PARAMS.get("seeded_names") or {}).items() if n}

    @task
    def proof(self) -> None:
        product = self.rng.choice(sorted(self.seeded))
        name = self.rng.choice(self.seeded[product])
        fetch_proof(self, product, artifact_id(product, name), "proof by artifact id")


if os.environ.get("DEPOSITORY_LOADTEST_DEBUG"):
    print(f"depository-loadtest users loaded: {sorted(PARAMS)}", file=sys.stderr)
