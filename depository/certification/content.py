"""What a certification covers: the promises, named and numbered as the organisation's
earlier certification listed them, each mapped to the executed checks that back it.

Ids (G1-G7, R1-R7, T1-T10, F1-F7, the scale-limit ids) are stable: they appear in the
report JSON, the OSCAL output and the reviewer's guide.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "GUARANTEES",
    "LIMITS",
    "REFUSALS",
    "ROLES",
    "SCENARIOS",
    "THREATS",
    "Item",
    "Limit",
]


@dataclass(frozen=True)
class Item:
    """A promise (guarantee, refusal, threat or failure scenario) and its checks."""

    id: str
    title: str
    statement: str
    checks: tuple[str, ...]
    detection: str = ""
    response: str = ""
    recovery: str = ""
    seed_mitigation: str = ""


@dataclass(frozen=True)
class Limit:
    id: str
    title: str
    seed_figure: str
    seed_method: str
    higher_is_better: bool


GUARANTEES: tuple[Item, ...] = (
    Item("G1", "Write-only semantics",
         "No deletes, no updates: an artifact's bytes, metadata and record are written once.",
         ("write-once",)),
    Item("G2", "Append-only audit trail",
         "Immutable, 7-year retention (WORM): every event is a leaf of a signed Merkle log, "
         "and any edit, deletion, reordering or rollback of it is detected.",
         ("replay", "tamper-drill", "audit-retention")),
    Item("G3", "No schema changes",
         "The SQL schema and every product's metadata schema are frozen into the first log "
         "record; a changed schema refuses writes and records a governance lock.",
         ("schema-frozen",)),
    Item("G4", "Provenance immutability",
         "Provenance metadata is locked once written: it is part of the signed record and "
         "cannot be replaced.",
         ("provenance",)),
    Item("G5", "Team (product) isolation",
         "No cross-product access: another product's artifact is indistinguishable from one "
         "that does not exist.",
         ("isolation",)),
    Item("G6", "Governance locks",
         "A detected violation halts writes until an admin unlocks with a logged reason.",
         ("governance-lock",)),
    Item("G7", "Legal defensibility",
         "Proven with hashes and signatures: signed checkpoints, inclusion and consistency "
         "proofs anyone can verify offline.",
         ("signatures", "replay")),
)

REFUSALS: tuple[Item, ...] = (
    Item("R1", "Read-heavy bulk operations",
         "There is no bulk export or scan API; listings are paginated and product-scoped.",
         ("no-bulk-read",)),
    Item("R2", "Schema evolution",
         "A changed product or SQL schema is refused, not migrated.",
         ("schema-frozen",)),
    Item("R3", "Conditional writes",
         "No compare-and-set or overwrite-if: a name is written once, whatever the condition.",
         ("no-conditional-write", "write-once")),
    Item("R4", "Governance relaxation (no exceptions)",
         "While locked, every state-changing operation is refused; there is no bypass flag.",
         ("no-governance-relaxation",)),
    Item("R5", "Cross-team data sharing",
         "A product's credentials never reach another product's artifacts.",
         ("isolation",)),
    Item("R6", "Real-time cross-product queries",
         "Queries are scoped to one product; product tokens are bound to one product.",
         ("no-cross-product-query",)),
    Item("R7", "Multi-region replication (legal reasons)",
         "One store directory, one writer process; the configuration has no replication "
         "setting and refuses unknown keys.",
         ("no-replication",)),
)

THREATS: tuple[Item, ...] = (
    Item("T1", "Storage exhaustion",
         "Per-product byte and count quotas refuse writes with the figures; usage is "
         "reported against alert levels.",
         ("quota",), detection="quota refusal (QuotaError) and usage against 70/85/95 % "
         "alert levels", seed_mitigation="monitoring with escalation at thresholds"),
    Item("T2", "Metadata poisoning",
         "Metadata is validated against the product's frozen JSON Schema and must be exact "
         "JSON; invalid metadata is refused before any byte is stored.",
         ("metadata-validation",), detection="MetadataError before the write; log unchanged",
         seed_mitigation="validation and rejection"),
    Item("T3", "Schema evolution",
         "Schema fingerprints in the first record; a change refuses writes and locks.",
         ("schema-frozen",), detection="fingerprint mismatch on open; governance.lock record",
         seed_mitigation="blocked; needs top-level approval"),
    Item("T4", "Concurrent write conflicts",
         "One writer thread serialises all appends; write-once is decided inside the "
         "transaction, so racing writers cannot both win.",
         ("concurrent-writers",), detection="WriteOnceError for every losing writer; "
         "artifact.refused records", seed_mitigation="conflict-free append (the seed said "
         "optimistic locking)"),
    Item("T5", "Executor override",
         "Tokens are checked, revocable and logged; refusals carry the actor; unlocking "
         "needs a logged reason.",
         ("authority", "executor-misbehaves"), detection="failed authentication; refusal "
         "records naming the actor", seed_mitigation="authority validation"),
    Item("T6", "AI escalation",
         "Write-only API: no update or delete path exists, and SQLite triggers refuse them.",
         ("write-once", "ai-escalation"), detection="refusal records; trigger errors",
         seed_mitigation="write-only enforcement"),
    Item("T7", "Cross-product contamination",
         "Every read is scoped to a product; another product's artifact is 'not found'.",
         ("isolation",), detection="NotFoundError (indistinguishable from absence)",
         seed_mitigation="isolation enforcement"),
    Item("T8", "Audit tampering",
         "Merkle log and signed checkpoints; offline replay of every record, node, derived "
         "row and blob; saved checkpoints catch rollbacks.",
         ("replay", "tamper-drill"), detection="offline replay findings naming the record, "
         "table or artifact", seed_mitigation="WORM enforcement"),
    Item("T9", "Ownership challenge",
         "Legal holds (matter, reason, actor, scope) block disposal; provenance is in "
         "signed records.",
         ("legal-hold",), detection="disposal refused under hold; hold records",
         seed_mitigation="legal hold process"),
    Item("T10", "Provenance over-trust",
         "Provenance is part of the signed record; tlog-proofs verify it offline.",
         ("provenance", "signatures"), detection="proof verification failure",
         seed_mitigation="cryptographic proof"),
)

SCENARIOS: tuple[Item, ...] = (
    Item("F1", "An executor misbehaves",
         "A product's executor overwrites an artifact and is cut off.",
         ("executor-misbehaves",),
         detection="the overwrite is refused and logged (artifact.refused, with the actor)",
         response="the executor's token is revoked (token.revoke record); it stops working",
         recovery="a new token is issued; no data was changed"),
    Item("F2", "An AI attempts escalation",
         "An AI agent's token reaches for another product, tries to shorten retention and to "
         "overwrite.",
         ("ai-escalation",),
         detection="not-found for the other product; retention.refused and artifact.refused "
         "records",
         response="a manual governance lock halts writes (governance.lock record)",
         recovery="after review, unlock with a logged reason (governance.unlock)"),
    Item("F3", "Product urgency pushes against the constitution",
         "A team changes its product's schema or quota in the configuration to ship faster.",
         ("schema-frozen", "no-governance-relaxation"),
         detection="the store refuses to open for writing and records a governance lock",
         response="writes stay refused; there is no exception path",
         recovery="restore the frozen configuration, then unlock with a logged reason"),
    Item("F4", "A team tries to relax boundaries",
         "A team shortens retention, writes below the minimum retention, or reads across "
         "products.",
         ("boundary-relaxation", "isolation"),
         detection="RetentionError with retention.refused records; not-found across products",
         response="the attempt is refused and kept in the log",
         recovery="nothing to recover: no state changed"),
    Item("F5", "Provenance metadata is questioned",
         "Someone disputes who produced an artifact.",
         ("provenance",),
         detection="the stored provenance is compared with its signed log record",
         response="a tlog-proof for the record, verified offline against the checkpoint",
         recovery="the proof file is handed to the questioner"),
    Item("F6", "An auditor demands an explanation",
         "An auditor asks for proof that history was not rewritten.",
         ("replay", "signatures"),
         detection="offline replay of the whole store with the auditor's verifier",
         response="this report, its checkpoint and the consistency proof from the previous "
         "certification",
         recovery="the auditor re-runs the verifier on their own machine"),
    Item("F7", "A legal investigation begins",
         "Counsel needs evidence preserved for a matter.",
         ("legal-hold",),
         detection="hold.place record with matter, reason and actor",
         response="disposal of held artifacts is refused; the evidence is preserved",
         recovery="hold.release with a reason when the matter closes"),
)

LIMITS: tuple[Limit, ...] = (
    Limit("artifact-size", "Artifact size", "500 MB", "tested", True),
    Limit("total-storage", "Total storage", "1000 GB", "tier specification", True),
    Limit("concurrent-writers", "Concurrent writes", "100 writers", "load tested", True),
    Limit("write-throughput", "Write throughput", "1000 writes/s", "calculated", True),
    Limit("artifact-count", "Artifact count", "100,000 artifacts", "estimated", True),
    Limit("query-response", "Query response", "< 5 seconds", "SLA", False),
    Limit("audit-trail", "Audit trail", "unlimited (7-year retention)", "—", True),
)

ROLES: tuple[tuple[str, str], ...] = (
    ("Bucket Owner", "final approval"),
    ("Executor Lane", "governance validation"),
    ("Strategic Advisor", "risk review"),
    ("Enforcement Engine", "integration confirmation"),
    ("Assistant Backend", "write-only validation"),
)
