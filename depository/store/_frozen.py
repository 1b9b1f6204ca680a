"""What ``init`` freezes in the log's first record, and what opening for writing checks
against it (the SQL schema, the products' configuration, the tree against the last
signed checkpoint)."""

from __future__ import annotations

import hashlib
from typing import Any

from depository import __version__
from depository.store import _schema
from depository.store._errors import StoreError
from depository.store._logstore import LogStorage
from depository.store.config import Config
from depository.tlog import merkle
from depository.tlog.record import canonical_json, parse_record

CONFIG_NAME = "depository.yaml"


def init_body(cfg: Config, verifier_key: str, sql_fingerprint: str) -> dict[str, Any]:
    """The body of the ``store.init`` record."""
    frozen = cfg.frozen_json()
    return {
        "origin": cfg.origin,
        "verifier_key": verifier_key,
        "tool_version": __version__,
        "schema_version": _schema.SCHEMA_VERSION,
        "sql_schema_sha256": sql_fingerprint,
        "frozen_config_sha256": hashlib.sha256(canonical_json(frozen)).hexdigest(),
        "products": {
            pid: {"name": p.name, "metadata_schema_sha256": p.schema_sha256(),
                  "quota_bytes": p.quota_bytes, "quota_artifacts": p.quota_artifacts}
            for pid, p in sorted(cfg.products.items())
        },
        "default_retention_days": cfg.default_retention_days,
        "max_artifact_size": cfg.max_artifact_size,
    }


def open_problems(db: LogStorage, size: int, config: Config) -> list[tuple[str, str]]:
    """(check, problem) for each way the store no longer matches what it froze or signed;
    ``size`` is the writer's log size."""
    problems: list[tuple[str, str]] = []
    first = db.leaf(0)
    if first is None:
        raise StoreError("the store has no init record; it was not created by "
                         "`depository init` or its log was truncated")
    init = parse_record(first, index=0).body
    if init.get("sql_schema_sha256") != db.schema_fingerprint():
        problems.append(("schema", "the SQL schema (tables, indexes or WORM triggers) no "
                         "longer matches the one frozen at init"))
    frozen = hashlib.sha256(canonical_json(config.frozen_json())).hexdigest()
    if init.get("frozen_config_sha256") != frozen:
        changed = [
            pid for pid, p in config.products.items()
            if init.get("products", {}).get(pid, {}).get("metadata_schema_sha256")
            != p.schema_sha256()
        ]
        problems.append(("schema", "the origin or products (metadata schemas, quotas) in "
                         f"{CONFIG_NAME} differ from those frozen at init"
                         + (f" (schemas changed: {', '.join(changed)})" if changed else "")
                         + "; restore the original configuration"))
    cp = db.last_checkpoint()
    if cp is not None:
        try:
            root = merkle.root_from_nodes(db.node, cp[0])
        except StoreError as exc:
            root = b""
            problems.append(("integrity", f"tree storage incomplete: {exc}"))
        if root and root != cp[1]:
            problems.append(("integrity", f"the stored tree at size {cp[0]} does not match "
                             "its signed checkpoint root"))
    if cp is not None and size < cp[0]:
        problems.append(("integrity", f"the log has {size} records but a "
                         f"checkpoint covers {cp[0]}: records were removed"))
    return problems
