"""The seven scale limits: what each suite measures, how, and with which load per profile.

Pure data and small functions (no locust, no I/O). The targets themselves come from the
store's configuration (``scale_limits`` in ``depository.yaml``); the ``quick`` profile
scales them down and says so in the results, ``certify`` uses them in full.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from depository.loadtests import LIMIT_IDS
from depository.store.config import DEFAULT_SCALE_LIMITS, MB

PROFILES = ("quick", "certify")
# Write latency bound for the throughput limit when the configuration gives none
# (``scale_limits.write-throughput.p99_ms``).
DEFAULT_WRITE_P99_MS = 1000.0


@dataclass(frozen=True)
class LimitSpec:
    id: str
    title: str
    description: str
    method: str
    locustfile: str

    @property
    def module(self) -> str:
        return f"depository.loadtests.{self.locustfile}"


SPECS: dict[str, LimitSpec] = {
    "artifact-size": LimitSpec(
        "artifact-size", "Artifact size",
        "The largest single artifact the service accepts and stores intact.",
        "One writer streams artifacts of the target size (generated on the fly, never held "
        "in memory) with PUT; each receipt's sha256 is checked against the hash computed "
        "while sending, then the content is read back with GET and hashed again. One byte "
        "over the limit must be refused with 413. Upload and read-back throughput and the "
        "server's peak RSS (VmHWM) are recorded; the server must stream (RSS growth below "
        "half the artifact size).",
        "locustfile_artifact_size",
    ),
    "total-storage": LimitSpec(
        "total-storage", "Total storage",
        "Capacity the store can account for and hold; quota enforcement at the limit.",
        "1000 GB cannot be filled here, so three things are measured. (1) Accounting: a "
        "mixed workload (inline and file artifacts, identical re-uploads, conflicting "
        "re-uploads, oversize attempts) over several products, after which the bytes the "
        "store reports per product must equal the acknowledged bytes exactly. (2) Quota: "
        "writers fill a product with a small quota past its limit; writes must be refused "
        "cleanly (507/429, nothing else), an alert raised at each configured level, and "
        "every acknowledged write still present. (3) Growth: the store is seeded through "
        "the library to sizes over several orders of magnitude; at each, HTTP write latency "
        "and metadata bytes are measured and fitted (latency against log10 of the artifact "
        "count, metadata linearly) and extrapolated to the target at the mean artifact size "
        "of the mixed workload. The figure is the largest store measured, never the target; "
        "the extrapolation states its model, data points and 95 % prediction interval, is "
        "'insufficient data' with fewer than three levels or an unusable fit, and passes "
        "only if the interval's upper end stays under the p99 bound and the store's file "
        "system has room for the target.",
        "locustfile_total_storage",
    ),
    "concurrent-writers": LimitSpec(
        "concurrent-writers", "Concurrent writers",
        "Writers writing at once without errors or lost writes.",
        "The target number of writers, each with its own connection, PUT small unique "
        "artifacts back to back for the whole hold stage. Every receipt is validated. "
        "Afterwards every acknowledged write is looked up in the store (same sha256, same "
        "log index) and the offline verifier replays the store. Passes only with zero "
        "errors, zero lost writes and a verified store.",
        "locustfile_concurrent_writers",
    ),
    "write-throughput": LimitSpec(
        "write-throughput", "Write throughput",
        "The highest sustained durable write rate within the latency bound.",
        "Paced writers offer a load stepped upward (a stage table); every acknowledged "
        "write is durable (fsynced before the response). For each step the achieved rate "
        "of acknowledged writes, p99 latency and errors are computed from the per-request "
        "log; the figure is the highest achieved rate of a step whose p99 is under the "
        "configured bound and which had zero errors.",
        "locustfile_write_throughput",
    ),
    "artifact-count": LimitSpec(
        "artifact-count", "Artifact count",
        "Write and query latency with the store holding the target number of artifacts.",
        "The store is seeded to the target count through the library (bulk, recorded as "
        "such; HTTP when driving a remote target), then writers and readers run "
        "concurrently and write and query latency are measured at that size.",
        "locustfile_artifact_count",
    ),
    "query-response": LimitSpec(
        "query-response", "Query response",
        "Query latency under concurrent write load.",
        "On a seeded store, readers run a mix of queries (list by product, name prefix, "
        "time range, metadata field; content by name; inclusion proof by artifact id) while "
        "writers write. The figure is the worst per-query-type p99; it must be under the "
        "target with zero errors.",
        "locustfile_query_response",
    ),
    "audit-trail": LimitSpec(
        "audit-trail", "Audit trail",
        "Proof cost as the log grows (unlimited log, 7-year retention).",
        "The log is grown through the library to sizes over several orders of magnitude; "
        "at each, inclusion proofs by artifact id are fetched over HTTP (latency, proof "
        "size in hashes and bytes) and a sample is verified offline with the auditor's "
        "verifier (proofs/s), and the whole store is replayed by the verifier (records/s). "
        "Proof size must stay within ceil(log2 n) hashes and latency grow no faster than "
        "log n; every receipt must carry a retention of at least 7 years. The figure is "
        "the largest log measured: 'unlimited' is EXTRAPOLATED beyond it (proof p99 fitted "
        "against log2 n, with its 95 % prediction interval at 10^12 records, under the "
        "query-response limit).",
        "locustfile_audit_trail",
    ),
}

# Load parameters per profile. Sizes in bytes, durations in seconds.
PROFILE_PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "artifact-size": {"size": 32 * MB, "uploads": 2},
        "total-storage": {
            "mixed_users": 8, "mixed_s": 4, "quota_bytes": 4 * MB, "quota_write": 96 * 1024,
            "quota_users": 4, "levels": [300, 1000, 3000, 10_000], "level_users": 8,
            "level_s": 2,
            # Scaled down: the extrapolation and the free-disk check aim at 10 GB, not the
            # configured 1000 GB.
            "pass_at": 10_000_000_000,
        },
        "concurrent-writers": {"writers": 25, "ramp_s": 1, "hold_s": 4},
        "write-throughput": {"rates": [25, 50, 100, 200], "step_s": 2, "rate_per_user": 5,
                             "pass_at": 100},
        "artifact-count": {"count": 2000, "writers": 4, "readers": 4, "duration_s": 4},
        "query-response": {"seed": 2000, "readers": 8, "writers": 8, "duration_s": 4},
        "audit-trail": {"sizes": [200, 1000, 3000, 10_000], "users": 4, "burst_s": 2,
                        "verify_sample": 100},
    },
    "certify": {
        "artifact-size": {"size": None, "uploads": 3},
        "total-storage": {
            "mixed_users": 16, "mixed_s": 60, "quota_bytes": 64 * MB,
            "quota_write": 256 * 1024, "quota_users": 8,
            "levels": [100, 1000, 10_000, 100_000], "level_users": 8, "level_s": 15,
        },
        "concurrent-writers": {"writers": None, "ramp_s": 10, "hold_s": 180},
        "write-throughput": {
            "rates": [100, 200, 300, 400, 500, 600, 800, 1000, 1200], "step_s": 20,
            "rate_per_user": 5,
            # left out of each step's figures: users being added and the previous
            # step's queue draining (the step's errors still count)
            "settle_s": 4,
        },
        "artifact-count": {"count": None, "writers": 8, "readers": 8, "duration_s": 60},
        "query-response": {"seed": None, "readers": 16, "writers": 32, "duration_s": 90},
        "audit-trail": {"sizes": [100, 1000, 10_000, 100_000], "users": 4, "burst_s": 15,
                        "verify_sample": 2000},
    },
}


def targets_from(scale_limits: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """Each limit's configured target (``scale_limits``), falling back to the defaults."""
    limits: dict[str, dict[str, Any]] = {k: dict(v) for k, v in DEFAULT_SCALE_LIMITS.items()}
    for k, v in (scale_limits or {}).items():
        limits[k] = {**limits.get(k, {}), **v}
    return {lid: limits[lid] for lid in LIMIT_IDS}


def params_for(limit: str, profile: str, targets: Mapping[str, Mapping[str, Any]]
               ) -> dict[str, Any]:
    """The load parameters of ``limit`` in ``profile``; ``None`` means 'the target'."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
    p = dict(PROFILE_PARAMS[profile][limit])
    target: Any = targets[limit].get("target")
    if limit == "artifact-size" and p["size"] is None:
        p["size"] = int(target)
    if limit == "concurrent-writers" and p["writers"] is None:
        p["writers"] = int(target)
    if limit == "artifact-count" and p["count"] is None:
        p["count"] = int(target)
    if limit == "query-response" and p["seed"] is None:
        p["seed"] = int(targets["artifact-count"]["target"])
    if limit == "write-throughput" and "pass_at" not in p:
        p["pass_at"] = float(target)
    if limit == "write-throughput":
        p["p99_ms"] = float(targets[limit].get("p99_ms", DEFAULT_WRITE_P99_MS))
        p["p99_ms_source"] = "config" if "p99_ms" in targets[limit] else "default"
    return p


def scaled_target(limit: str, params: Mapping[str, Any], target: Any) -> Any:
    """The figure a run of this profile is judged against: the configured target in the
    certify profile, a scaled-down one (labelled so) in the quick profile."""
    if "pass_at" in params:
        return params["pass_at"]
    if limit == "artifact-size":
        return params["size"]
    if limit == "concurrent-writers":
        return params["writers"]
    if limit == "artifact-count":
        return params["count"]
    return target
