"""Shared helpers for the service tests (no tests here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from depository.store import Store
from depository.store.config import default_config_dict

PRODUCTS = ("ai-assistant", "ai-avatar", "enforcement", "gurukul")


def store_config(**overrides: Any) -> dict[str, Any]:
    cfg = default_config_dict("test.example/log")
    cfg["checkpoint"] = {"every_entries": 50, "every_ms": 100}
    cfg.update(overrides)
    return cfg


def make_store(path: Path, **overrides: Any) -> Store:
    return Store.init(path, config=store_config(**overrides))


def issue_tokens(store: Store) -> dict[str, str]:
    """A secret for every role: 'writer:gurukul', 'reader:ai-avatar', 'auditor', 'legal',
    'legal:gurukul', 'admin'."""
    out: dict[str, str] = {}
    for p in PRODUCTS:
        for role in ("writer", "reader", "legal"):
            out[f"{role}:{p}"] = store.create_token(role=role, product=p, actor="test")[0]
    for role in ("auditor", "legal", "admin"):
        out[role] = store.create_token(role=role, actor="test")[0]
    return out


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
