"""The report's results as OSCAL Assessment Results (NIST OSCAL 1.1.2, JSON).

Mapping: one ``result`` for the certification run; one ``observation`` per executed check
(method TEST, with its steps as the description and its evidence as relevant-evidence);
one ``finding`` per guarantee, refusal and threat (target type ``objective-id``, target
the item id, state ``satisfied`` only when every check behind it passed) and one per scale
limit. Ids are deterministic UUIDv5s derived from the report id.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

__all__ = ["OSCAL_VERSION", "assessment_results"]

OSCAL_VERSION = "1.1.2"
_NS = uuid.UUID("0d8e3a6c-2f4b-5a7e-9c1d-3b6f8e2a4c5d")


def _uuid(report_id: str, *parts: str) -> str:
    return str(uuid.uuid5(_NS, "/".join((report_id, *parts))))


def assessment_results(data: Mapping[str, Any], report_sha256: str) -> dict[str, Any]:
    rid = str(data["report_id"])
    when = str(data["generated_at"])
    observations = []
    obs_ids: dict[str, str] = {}
    for c in data["checks"]:
        oid = _uuid(rid, "observation", c["id"])
        obs_ids[c["id"]] = oid
        steps = "\n".join(f"- {s['action']}: expected {s['expected']}; observed "
                          f"{s['observed']} ({'ok' if s['ok'] else 'NOT OK'})"
                          for s in c["steps"])
        observations.append({
            "uuid": oid,
            "title": f"{c['id']}: {c['title']}",
            "description": f"{c['summary']}\n\n{steps}".strip(),
            "props": [{"name": "result", "ns": "https://depository.example/ns/oscal",
                       "value": c["status"]}],
            "methods": ["TEST"],
            "types": ["finding"] if c["status"] != "pass" else ["control-objective"],
            "collected": c["started"],
            "relevant-evidence": [
                {"href": f"#{e['ref']}" if not str(e["ref"]).startswith("evidence/")
                 else str(e["ref"]), "description": f"{e['kind']}: {e['ref']}"}
                for e in c["evidence"][:50]
            ] or [{"description": "no evidence items recorded"}],
        })
    findings = []

    def finding(kind: str, item: Mapping[str, Any], checks: list[str], status: str) -> None:
        findings.append({
            "uuid": _uuid(rid, "finding", kind, str(item["id"])),
            "title": f"{item['id']}: {item['title']}",
            "description": str(item.get("statement") or item.get("note") or item["title"]),
            "target": {
                "type": "objective-id",
                "target-id": f"depository-{kind}-{str(item['id']).lower()}",
                "status": {"state": "satisfied" if status == "pass" else "not-satisfied",
                           "reason": status},
            },
            "related-observations": [{"observation-uuid": obs_ids[c]} for c in checks
                                     if c in obs_ids],
        })

    for kind, items in (("guarantee", data["guarantees"]), ("refusal", data["refusals"]),
                        ("threat", data["threats"])):
        for it in items:
            finding(kind, it, list(it["checks"]), str(it["status"]))
    for lim in data["scale_limits"]["limits"]:
        finding("scale-limit", {**lim, "statement": (
            f"target {lim['target']} {lim.get('unit') or ''}, measured {lim['measured']} "
            f"({lim.get('method') or 'unknown method'})")}, [], str(lim["status"]))
    return {
        "assessment-results": {
            "uuid": _uuid(rid, "assessment-results"),
            "metadata": {
                "title": f"Depository certification {rid}",
                "last-modified": when,
                "version": rid,
                "oscal-version": OSCAL_VERSION,
                "props": [{"name": "report-sha256", "ns": "https://depository.example/ns/oscal",
                           "value": report_sha256}],
            },
            "import-ap": {"href": "#depository-certification-assessment-plan"},
            "results": [{
                "uuid": _uuid(rid, "result"),
                "title": f"Certification of {data['store']['origin']}",
                "description": f"Verdict: {data['verdict']['result']}. "
                               + "; ".join(data["verdict"]["reasons"][:10]),
                "start": when,
                "end": when,
                "reviewed-controls": {"control-selections": [{"include-all": {}}]},
                "observations": observations,
                "findings": findings,
            }],
        }
    }
