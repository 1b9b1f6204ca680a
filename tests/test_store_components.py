"""The store's component contracts: typed errors mapped to problems without reading
messages, blob backends that never see a Store, the writer seam and its wire forms."""

from __future__ import annotations

from depository.service._problems import from_store_error
from depository.store import GovernanceLockedError, MetadataError, StoreError


def test_problem_comes_from_the_error_data_not_its_wording() -> None:
    # Messages deliberately mention other parts: only the attributes may decide.
    p = from_store_error(MetadataError("a name about metadata", part="provenance"))
    assert (p.slug, p.field) == ("invalid-header", "header:Depository-Provenance")
    p = from_store_error(MetadataError("provenance name", part="metadata", field="a/b"))
    assert (p.slug, p.field) == ("metadata-invalid", "header:Depository-Metadata/a/b")
    p = from_store_error(MetadataError("x", part="metadata", field=""))
    assert (p.slug, p.field) == ("metadata-invalid", "header:Depository-Metadata")
    p = from_store_error(MetadataError("metadata provenance", part="actor"), subject="body")
    assert (p.slug, p.field) == ("invalid-parameter", "body")
    p = from_store_error(MetadataError("metadata", part="name"))
    assert (p.slug, p.field) == ("invalid-parameter", "path:name")
    p = from_store_error(GovernanceLockedError("reworded entirely", reason="drill"))
    assert p.slug == "governance-locked" and p.extra == {"reason": "drill"}
    assert p.headers == {"Retry-After": "60"}
    assert from_store_error(StoreError("anything")).slug == "refused"


def test_governance_error_carries_its_reason() -> None:
    e = GovernanceLockedError.of("scrub found 1 damaged artifacts")
    assert e.reason == "scrub found 1 damaged artifacts" and e.attrs() == {"reason": e.reason}
    assert str(e).startswith("the store is under a governance lock: scrub found 1")
    rebuilt = type(e)(str(e), **e.attrs())
    assert rebuilt.reason == e.reason
