"""``depository.yaml``: products, quotas, retention, cadence and scale-limit thresholds.

Validated on load; every error names the key at fault and what is expected.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from depository.store._backend import AnchorConfig, BackendConfig, parse_anchors, parse_backend
from depository.store._errors import ConfigError
from depository.tlog.record import canonical_json

GB = 1000**3
MB = 1000**2
_PRODUCT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")

# The seed's seven scale limits; ids are shared with load-test results and reports.
DEFAULT_SCALE_LIMITS: dict[str, dict[str, Any]] = {
    "artifact-size": {"target": 500 * MB, "unit": "bytes"},
    "total-storage": {"target": 1000 * GB, "unit": "bytes"},
    "concurrent-writers": {"target": 100, "unit": "writers"},
    "write-throughput": {"target": 1000, "unit": "writes/s", "p99_ms": 1000},
    "artifact-count": {"target": 100_000, "unit": "artifacts"},
    "query-response": {"target": 5.0, "unit": "seconds"},
    "audit-trail": {"target": None, "unit": "records", "retention_years": 7},
}

_PERMISSIVE_SCHEMA: dict[str, Any] = {"type": "object"}

DEFAULT_PRODUCTS: dict[str, dict[str, Any]] = {
    "ai-assistant": {"name": "AI Assistant", "description": "conversation logs"},
    "ai-avatar": {"name": "AI Avatar", "description": "media metadata; safe with constraints"},
    "gurukul": {"name": "Gurukul", "description": "educational content"},
    "enforcement": {"name": "Enforcement", "description": "decision logs"},
}


@dataclass(frozen=True)
class Product:
    """One product: its id, display name, metadata schema and quotas."""

    id: str
    name: str
    description: str
    metadata_schema: Mapping[str, Any]
    quota_bytes: int
    quota_artifacts: int

    def frozen_json(self) -> dict[str, Any]:
        """What is hashed into the log at init and must never change."""
        return {
            "name": self.name,
            "metadata_schema": dict(self.metadata_schema),
            "quota_bytes": self.quota_bytes,
            "quota_artifacts": self.quota_artifacts,
        }

    def schema_sha256(self) -> str:
        return hashlib.sha256(canonical_json(dict(self.metadata_schema))).hexdigest()


ENGINES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class EngineConfig:
    """Where the log and catalog live (ADR 0013): ``sqlite`` (``STORE/depository.db``, the
    default) or ``postgresql`` at ``dsn`` (a libpq conninfo naming the service role; the
    password is never in the file). ``DEPOSITORY_PG_DSN`` overrides ``dsn`` at run time."""

    type: str = "sqlite"
    dsn: str | None = None


def parse_engine(raw: Any) -> EngineConfig:
    if raw is None:
        return EngineConfig()
    _need(isinstance(raw, dict), "engine", "must be a mapping, e.g. {type: postgresql, "
          "dsn: 'host=db dbname=depository user=depository_service'}")
    bad = sorted(set(raw) - {"type", "dsn"})
    _need(not bad, f"engine.{bad[0] if bad else ''}", "unknown key (expected type, dsn)")
    kind = raw.get("type", "sqlite")
    _need(kind in ENGINES, "engine.type", f"must be one of {', '.join(ENGINES)}, got {kind!r}")
    dsn = raw.get("dsn")
    if kind == "sqlite":
        _need(dsn is None, "engine.dsn", "is only for engine.type postgresql")
        return EngineConfig()
    if dsn is not None:
        from depository.store._pg import check_dsn

        dsn = check_dsn(dsn, "engine.dsn")
    return EngineConfig("postgresql", dsn)


@dataclass(frozen=True)
class Config:
    """A validated store configuration."""

    origin: str
    products: Mapping[str, Product]
    default_retention_days: int = 7 * 365 + 2
    max_artifact_size: int = 500 * MB
    inline_max: int = 64 * 1024
    checkpoint_every_entries: int = 1000
    checkpoint_every_ms: int = 1000
    scale_limits: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: dict(DEFAULT_SCALE_LIMITS)
    )
    alert_levels: tuple[int, ...] = (70, 85, 95)
    backend: BackendConfig = field(default_factory=BackendConfig)
    anchors: AnchorConfig | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)
    # Operations settings, validated by the service (never frozen into the log).
    alerting: Mapping[str, Any] = field(default_factory=dict)
    schedule: Mapping[str, Any] = field(default_factory=dict)
    monitoring: Mapping[str, Any] = field(default_factory=dict)

    def frozen_json(self) -> dict[str, Any]:
        """The part of the configuration the log freezes at init."""
        return {
            "origin": self.origin,
            "products": {pid: p.frozen_json() for pid, p in sorted(self.products.items())},
        }


def default_config_dict(origin: str) -> dict[str, Any]:
    """The configuration ``init`` writes when none is given: the four demo products."""
    per_product_bytes = 1000 * GB // 4
    return {
        "origin": origin,
        "default_retention_days": 7 * 365 + 2,
        "max_artifact_size": 500 * MB,
        "inline_max": 64 * 1024,
        "checkpoint": {"every_entries": 1000, "every_ms": 1000},
        "alert_levels": [70, 85, 95],
        "scale_limits": {k: dict(v) for k, v in DEFAULT_SCALE_LIMITS.items()},
        "products": {
            pid: {
                "name": p["name"],
                "description": p["description"],
                "metadata_schema": dict(_PERMISSIVE_SCHEMA),
                "quota": {"bytes": per_product_bytes, "artifacts": 100_000 // 4 * 4},
            }
            for pid, p in DEFAULT_PRODUCTS.items()
        },
    }


def dump_config(data: Mapping[str, Any]) -> str:
    """YAML text for a configuration dict, with a header comment."""
    header = (
        "# Depository store configuration. Products (ids, names, metadata schemas, quotas)\n"
        "# and the origin are frozen into the log at init: changing them later makes the\n"
        "# store refuse writes (schema evolution is a refusal, not a feature).\n"
    )
    return header + yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True)


_TOP_KEYS = {
    "origin", "products", "default_retention_days", "max_artifact_size", "inline_max",
    "checkpoint", "alert_levels", "scale_limits", "backend", "anchors",
    # The storage engine (not frozen into the log: a store may move between engines).
    "engine",
    # Read by `depository certify` (required sign-offs); the store ignores it.
    "certification",
    # Read by the service's alerting and scheduled checks (depository.service.alerts,
    # depository.service.checks), which validate them; the store only keeps them.
    "alerting", "schedule", "monitoring",
}


def _need(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {msg}")


def _pos_int(value: Any, key: str, *, allow_zero: bool = False) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    _need(ok and (value >= 0 if allow_zero else value > 0), key,
          f"must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}")
    return int(value)


def parse_config(data: Any, *, source: str = "depository.yaml") -> Config:
    """Validate a configuration mapping; raises :class:`ConfigError` naming the bad key."""
    _need(isinstance(data, dict), source, "must be a mapping at the top level")
    unknown = sorted(set(data) - _TOP_KEYS)
    _need(not unknown, f"{source}: {unknown[0] if unknown else ''}",
          f"unknown key (expected one of {', '.join(sorted(_TOP_KEYS))})")
    origin = data.get("origin")
    _need(isinstance(origin, str) and bool(origin.strip()) and not any(c.isspace() for c in origin)
          and "+" not in origin, "origin", "must be a non-empty name without spaces or '+'")
    products_raw = data.get("products")
    _need(isinstance(products_raw, dict) and bool(products_raw), "products",
          "must map product ids to product settings (at least one)")
    products: dict[str, Product] = {}
    for pid, p in products_raw.items():
        key = f"products.{pid}"
        _need(isinstance(pid, str) and bool(_PRODUCT_ID.match(pid)), key,
              "product id must be lower-case letters, digits and '-'")
        _need(isinstance(p, dict), key, "must be a mapping")
        bad = sorted(set(p) - {"name", "description", "metadata_schema", "quota"})
        _need(not bad, f"{key}.{bad[0] if bad else ''}", "unknown key")
        name = p.get("name", pid)
        _need(isinstance(name, str) and bool(name), f"{key}.name", "must be a string")
        schema = p.get("metadata_schema", _PERMISSIVE_SCHEMA)
        _need(isinstance(schema, dict), f"{key}.metadata_schema", "must be a JSON Schema object")
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ConfigError(
                f"{key}.metadata_schema: not a valid JSON Schema: {exc.message}"
            ) from None
        quota = p.get("quota", {})
        _need(isinstance(quota, dict), f"{key}.quota", "must be a mapping")
        bad = sorted(set(quota) - {"bytes", "artifacts"})
        _need(not bad, f"{key}.quota.{bad[0] if bad else ''}", "unknown key")
        products[pid] = Product(
            id=pid,
            name=name,
            description=str(p.get("description", "")),
            metadata_schema=schema,
            quota_bytes=_pos_int(quota.get("bytes", 250 * GB), f"{key}.quota.bytes"),
            quota_artifacts=_pos_int(quota.get("artifacts", 100_000), f"{key}.quota.artifacts"),
        )
    cp = data.get("checkpoint", {})
    _need(isinstance(cp, dict), "checkpoint", "must be a mapping")
    bad = sorted(set(cp) - {"every_entries", "every_ms"})
    _need(not bad, f"checkpoint.{bad[0] if bad else ''}", "unknown key")
    levels = data.get("alert_levels", [70, 85, 95])
    _need(isinstance(levels, list) and bool(levels)
          and all(isinstance(x, int) and 0 < x <= 100 for x in levels)
          and levels == sorted(set(levels)), "alert_levels",
          "must be an increasing list of percentages, e.g. [70, 85, 95]")
    limits = dict(DEFAULT_SCALE_LIMITS)
    limits_raw = data.get("scale_limits", {})
    _need(isinstance(limits_raw, dict), "scale_limits", "must be a mapping")
    for lid, spec in limits_raw.items():
        _need(lid in DEFAULT_SCALE_LIMITS, f"scale_limits.{lid}",
              f"unknown limit (expected one of {', '.join(DEFAULT_SCALE_LIMITS)})")
        _need(isinstance(spec, dict) and "target" in spec, f"scale_limits.{lid}",
              "must be a mapping with a 'target'")
        limits[lid] = {**DEFAULT_SCALE_LIMITS[lid], **spec}
    max_size = _pos_int(data.get("max_artifact_size", 500 * MB), "max_artifact_size")
    backend = parse_backend(data.get("backend"))
    inline_max = _pos_int(data.get("inline_max", 0 if backend.type == "s3" else 64 * 1024),
                          "inline_max", allow_zero=True)
    _need(inline_max <= 1024 * 1024, "inline_max", "must be at most 1 MiB (1048576)")
    _need(backend.type != "s3" or inline_max == 0, "inline_max",
          "must be 0 with backend.type s3, so every artifact's bytes are under Object Lock "
          "(remove inline_max or set it to 0)")
    ops: dict[str, Mapping[str, Any]] = {}
    for k in ("alerting", "schedule", "monitoring"):
        v = data.get(k, {})
        _need(isinstance(v, dict), k, "must be a mapping")
        ops[k] = v
    return Config(
        origin=origin,
        products=products,
        default_retention_days=_pos_int(
            data.get("default_retention_days", 7 * 365 + 2), "default_retention_days"
        ),
        max_artifact_size=max_size,
        inline_max=inline_max,
        checkpoint_every_entries=_pos_int(
            cp.get("every_entries", 1000), "checkpoint.every_entries"
        ),
        checkpoint_every_ms=_pos_int(cp.get("every_ms", 1000), "checkpoint.every_ms"),
        scale_limits=limits,
        alert_levels=tuple(levels),
        backend=backend,
        anchors=parse_anchors(data.get("anchors"), minimum_days=_pos_int(
            data.get("default_retention_days", 7 * 365 + 2), "default_retention_days")),
        alerting=ops["alerting"], schedule=ops["schedule"], monitoring=ops["monitoring"],
        engine=parse_engine(data.get("engine")),
    )


def load_config(path: Path) -> Config:
    """Read and validate a YAML configuration file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_config(data, source=str(path))
