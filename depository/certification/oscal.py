"""The report's results as OSCAL Assessment Results (NIST OSCAL 1.2.3, JSON).

Mapping: one ``result`` for the certification run; one ``observation`` per executed check
(method TEST, with its steps as the description and its evidence as relevant-evidence);
one ``finding`` per guarantee, refusal and threat (target type ``objective-id``, target
the item id, state ``satisfied`` only when every check behind it passed, related to the
observations of those checks) and one per scale limit. Ids are deterministic UUIDv5s
derived from the report id.

Every ``href`` is a URI reference that resolves: ``#<uuid>`` names a ``back-matter``
resource; a resource for a file of the report directory (``checkpoint.txt``,
``evidence/…``) carries that relative path as its ``rlink``. Log records cited as
evidence are resources with their index, type and leaf SHA-256 as properties. There is no
separate OSCAL assessment plan: ``import-ap`` names a resource saying so and pointing at
``report.json``, which lists the checks and the promises they back.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

__all__ = ["OSCAL_VERSION", "assessment_results"]

OSCAL_VERSION = "1.2.3"
_NS = uuid.UUID("0d8e3a6c-2f4b-5a7e-9c1d-3b6f8e2a4c5d")
_PROP_NS = "https://depository.example/ns/oscal"
_MAX_EVIDENCE = 50


def _uuid(report_id: str, *parts: str) -> str:
    return str(uuid.uuid5(_NS, "/".join((report_id, *parts))))


def _prop(name: str, value: object) -> dict[str, str]:
    return {"name": name, "ns": _PROP_NS, "value": str(value)}


class _BackMatter:
    """Back-matter resources, one per distinct cited thing, in first-cited order."""

    def __init__(self, report_id: str) -> None:
        self.report_id = report_id
        self.resources: dict[str, dict[str, Any]] = {}

    def add(self, key: str, resource: dict[str, Any]) -> str:
        if key not in self.resources:
            self.resources[key] = {"uuid": _uuid(self.report_id, "resource", key), **resource}
        return str(self.resources[key]["uuid"])

    def evidence(self, e: Mapping[str, Any]) -> dict[str, Any]:
        """One relevant-evidence entry for a check's evidence item."""
        kind, ref = str(e.get("kind", "")), str(e.get("ref", ""))
        if kind == "log-record" and "index" in e:
            where = str(e.get("where", "store"))
            log = "the store's log" if where == "store" else "the scratch copy's log"
            rid = self.add(f"log-record/{where}/{e['index']}", {
                "title": f"Record {e['index']} of {log} ({e.get('type', '?')})",
                "description": f"Log record {e['index']} of {log}, cited by its leaf SHA-256 "
                               + ("(the copy is discarded after the check)."
                                  if where != "store" else "(prove it with the store's log)."),
                "props": [_prop("log-index", e["index"]),
                          _prop("record-type", e.get("type", "unknown")),
                          _prop("leaf-sha256", e.get("leaf_sha256", "unknown"))],
            })
            return {"href": f"#{rid}", "description": f"{kind}: {ref}"}
        if kind in ("file", "checkpoint") or ref.startswith("evidence/"):
            rid = self.add(f"file/{ref}", {
                "title": f"Report file {ref}",
                "description": f"The file {ref} of the report directory (also embedded in the "
                               "report PDF).",
                "rlinks": [{"href": ref}],
            })
            return {"href": f"#{rid}", "description": f"{kind}: {ref}"}
        detail = "; ".join(f"{k}: {v}" for k, v in e.items() if k not in ("kind", "ref"))
        return {"description": f"{kind}: {ref}" + (f" ({detail})" if detail else "")}


def assessment_results(data: Mapping[str, Any], report_sha256: str) -> dict[str, Any]:
    rid = str(data["report_id"])
    when = str(data["generated_at"])
    back = _BackMatter(rid)
    plan = back.add("assessment-plan", {
        "title": "Depository certification plan",
        "description": (
            "No separate OSCAL assessment plan document exists. The plan is the fixed set of "
            f"checks of depository {data['tool']['version']} and the guarantees, refusals, "
            "threats, failure scenarios and scale limits they back, all listed in the "
            "report data report.json (also embedded in the report PDF)."),
        "rlinks": [{"href": "report.json", "media-type": "application/json"}],
    })
    observations = []
    obs_ids: dict[str, str] = {}
    for c in data["checks"]:
        oid = _uuid(rid, "observation", c["id"])
        obs_ids[c["id"]] = oid
        steps = "\n".join(f"- {s['action']}: expected {s['expected']}; observed "
                          f"{s['observed']} ({'ok' if s['ok'] else 'NOT OK'})"
                          for s in c["steps"])
        evidence = [back.evidence(e) for e in c["evidence"][:_MAX_EVIDENCE]]
        observations.append({
            "uuid": oid,
            "title": f"{c['id']}: {c['title']}",
            "description": f"{c['summary']}\n\n{steps}".strip() or c["id"],
            "props": [_prop("result", c["status"])],
            "methods": ["TEST"],
            "types": ["finding"] if c["status"] != "pass" else ["control-objective"],
            "collected": c["started"],
            "relevant-evidence": evidence or [{"description": "no evidence items recorded"}],
        })
    findings = []

    def finding(kind: str, item: Mapping[str, Any], checks: list[str], status: str,
                props: list[dict[str, str]] | None = None) -> None:
        out: dict[str, Any] = {
            "uuid": _uuid(rid, "finding", kind, str(item["id"])),
            "title": f"{item['id']}: {item['title']}",
            "description": str(item.get("statement") or item.get("note") or item["title"]),
            "target": {
                "type": "objective-id",
                "target-id": f"depository-{kind}-{str(item['id']).lower()}",
                "status": {"state": "satisfied" if status == "pass" else "not-satisfied",
                           "reason": status},
            },
        }
        if props:
            out["props"] = props
        related = [{"observation-uuid": obs_ids[c]} for c in checks if c in obs_ids]
        if related:  # OSCAL: the list, when present, is never empty
            out["related-observations"] = related
        findings.append(out)

    for kind, items in (("guarantee", data["guarantees"]), ("refusal", data["refusals"]),
                        ("threat", data["threats"])):
        for it in items:
            finding(kind, it, list(it["checks"]), str(it["status"]))
    for lim in data["scale_limits"]["limits"]:
        finding("scale-limit", {**lim, "statement": (
            f"target {lim['target']} {lim.get('unit') or ''}, measured {lim['measured']} "
            f"({lim.get('method') or 'unknown method'}); figures from loadtest-results.json")},
            [], str(lim["status"]), [_prop("method", lim.get("method") or "unknown")])
    result: dict[str, Any] = {
        "uuid": _uuid(rid, "result"),
        "title": f"Certification of {data['store']['origin']}",
        "description": f"Verdict: {data['verdict']['result']}. "
                       + "; ".join(data["verdict"]["reasons"][:10]),
        "start": when,
        "end": when,
        "reviewed-controls": {"control-selections": [{"include-all": {}}]},
        "findings": findings,
    }
    if observations:
        result["observations"] = observations
    return {
        "assessment-results": {
            "uuid": _uuid(rid, "assessment-results"),
            "metadata": {
                "title": f"Depository certification {rid}",
                "last-modified": when,
                "version": rid,
                "oscal-version": OSCAL_VERSION,
                "props": [_prop("report-sha256", report_sha256)],
            },
            "import-ap": {"href": f"#{plan}"},
            "results": [result],
            "back-matter": {"resources": list(back.resources.values())},
        }
    }
