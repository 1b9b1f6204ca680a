"""The seven scale limits, from a load-test ``results.json``.

The contract read here: a top-level ``limits`` list, each entry with ``id`` (one of the
seven limit ids), ``target``, ``measured``, ``unit``, ``pass`` and how the figure was
obtained — ``measured``, ``scaled-down`` or ``extrapolated`` — in ``method`` (or in
``figure``, with ``method`` then describing the procedure); optional ``status``
(``not-measured`` means no figure), latencies (``latency_ms`` or ``latencies``), charts
(``chart`` or ``charts``: SVG paths relative to the results directory), ``reason``,
``checks``; and a top-level ``environment`` object.

Nothing is taken on trust: the document is validated against the load-test schema
(``depository/loadtests/results.schema.json``); the pass/fail is recomputed from target
and measured value where the direction is known, a limit absent from the results is
"missing", and a figure the results call passing but that misses the configured target is
a failure.

The policy (:func:`limit_policy`), enforced, not advisory:

* results are bound to the store (every limit was run against the target the store is
  configured with), to the code (the git commit the load test ran is the one certifying,
  with no uncommitted changes) and to a profile; an unbound result cannot certify;
* a scaled-down figure (the ``quick`` profile, or a run judged against less than the
  configured target) can only make a report marked DEMO / NOT A CERTIFICATION;
* an extrapolated figure states its model, data points and uncertainty; an unusable fit is
  "insufficient data", never a pass; and a supported extrapolation counts only when the
  sign-off configuration accepts it by limit id (``accept_extrapolated``), which the
  report states on its cover and every signer signs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import subprocess
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from depository.certification.content import LIMITS
from depository.tlog import safejson
from depository.verifier.files import InputFileError, read_file

__all__ = ["FIGURE_KINDS", "ResultsError", "accepted_from", "code_commit", "limit_policy",
           "read_results", "scale_limits"]

FIGURE_KINDS = ("measured", "scaled-down", "extrapolated")
RESULTS_NAME = "results.json"
_MAX_CHART_BYTES = 2_000_000


class ResultsError(ValueError):
    """The load results cannot be read or do not follow the contract."""


def read_results(path: Path) -> tuple[dict[str, Any], bytes, Path]:
    """(parsed document, exact bytes, directory) for a results file or its directory."""
    file = path / RESULTS_NAME if path.is_dir() else path
    try:  # a regular file, bounded, nested no deeper than any reader handles
        raw = read_file(str(file), limit=safejson.MAX_BYTES, what="load-test results file")
        doc = safejson.loads(raw, what=str(file))
    except InputFileError as exc:
        raise ResultsError(f"cannot read load results {exc}") from exc
    except ValueError as exc:  # not JSON, or over the depth limit (JSONLimitError)
        raise ResultsError(f"{file}: not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("limits"), list):
        raise ResultsError(f"{file}: expected an object with a 'limits' list")
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        shown = "; ".join(f"at {_where(e)}: {e.message[:200]}" for e in errors[:5])
        raise ResultsError(
            f"{file} does not follow the load-test results schema ({len(errors)} "
            f"problem(s)): {shown}. Produce it with `depository loadtest run`; results "
            "edited by hand are not accepted")
    return doc, raw, file.parent


def _validator() -> jsonschema.Draft202012Validator:
    text = resources.files("depository.loadtests").joinpath("results.schema.json").read_text()
    return jsonschema.Draft202012Validator(json.loads(text))


def _where(err: jsonschema.ValidationError) -> str:
    return "/" + "/".join(str(p) for p in err.absolute_path)


def code_commit() -> tuple[str | None, bool | None]:
    """(git commit, has uncommitted changes) of the code running now; (None, None) when
    it is not a git checkout."""
    repo = Path(__file__).resolve().parents[2]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            st = subprocess.run(["git", "-C", str(repo), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True,
                                timeout=10)
            return out.stdout.strip(), bool(st.stdout.strip())
    return None, None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(float(value)) else None


def _figure_kind(entry: Mapping[str, Any]) -> str | None:
    for key in ("method", "figure"):
        value = entry.get(key)
        if isinstance(value, str) and value in FIGURE_KINDS:
            return value
    return None


def _latencies(entry: Mapping[str, Any]) -> dict[str, float]:
    raw = entry.get("latencies", entry.get("latency_ms"))
    out: dict[str, float] = {}
    if isinstance(raw, Mapping):
        for k, v in raw.items():
            n = _num(v)
            if n is not None:
                out[str(k)] = n
    elif isinstance(raw, list):
        values = sorted(x for x in (_num(v) for v in raw) if x is not None)
        for p in (50, 95, 99):
            if values:
                out[f"p{p}"] = values[min(len(values) - 1, math.ceil(p / 100 * len(values)) - 1)]
    return out


def _charts(entry: Mapping[str, Any], base: Path) -> list[dict[str, Any]]:
    names: list[str] = []
    for key in ("charts", "chart"):
        value = entry.get(key)
        if isinstance(value, str):
            names.append(value)
        elif isinstance(value, list):
            names += [v for v in value if isinstance(v, str)]
    out = []
    for name in names:
        p = (base / name).resolve()
        if base.resolve() not in p.parents or p.suffix.lower() != ".svg" or not p.is_file():
            out.append({"file": name, "embedded": False})
            continue
        data = p.read_bytes()
        if len(data) > _MAX_CHART_BYTES:
            out.append({"file": name, "embedded": False})
            continue
        out.append({"file": name, "embedded": True,
                    "sha256": hashlib.sha256(data).hexdigest(), "path": str(p)})
    return out


def _judge(lid: str, higher_is_better: bool, target: float | None, measured: float | None,
           claimed: bool | None) -> tuple[bool, str]:
    if measured is None and claimed is None:
        return False, "no figure"
    if target is not None and measured is not None:
        meets = measured >= target if higher_is_better else measured <= target
        if claimed is not None and meets != claimed:
            return False, (f"the results say {'pass' if claimed else 'fail'} but "
                           f"{measured:g} {'>=' if higher_is_better else '<='} {target:g} "
                           f"is {meets}; treated as a failure")
        return meets, ""
    return bool(claimed), "" if claimed is not None else "no pass/fail in the results"


def _binding(doc: Mapping[str, Any], commit: tuple[str | None, bool | None]
             ) -> dict[str, Any]:
    """Whether the results are bound to this code and a certification profile."""
    env = doc.get("environment") or {}
    got, dirty = env.get("git_commit"), env.get("git_dirty")
    tool, tool_dirty = commit
    problems: list[str] = []
    demo: list[str] = []
    if got is None or tool is None:
        problems.append("the load results cannot be bound to the code: the git commit of the "
                        f"load test ({got}) or of this certification ({tool}) is unknown")
    elif got != tool:
        problems.append(f"the load results were measured on commit {got[:12]}, this "
                        f"certification runs commit {tool[:12]}: rerun the load test")
    if dirty:
        demo.append("the load test ran on a working tree with uncommitted changes")
    if tool_dirty:
        demo.append("this certification ran on a working tree with uncommitted changes")
    profile = doc.get("profile")
    if profile != "certify":
        demo.append(f"the load results come from the {profile!r} profile, which scales the "
                    "limits down")
    odd = sorted({str(e.get("profile")) for e in doc.get("limits", [])
                  if isinstance(e, Mapping) and e.get("profile") != profile})
    if odd:
        problems.append(f"limits measured under another profile ({', '.join(odd)}) than "
                        f"the results' {profile!r}")
    return {"profile": profile, "results_commit": got, "results_dirty": dirty,
            "certifying_commit": tool, "certifying_dirty": tool_dirty,
            "problems": problems, "demo": demo}


def _extrapolation(e: Mapping[str, Any]) -> Mapping[str, Any] | None:
    d = e.get("details")
    x = d.get("extrapolation") if isinstance(d, Mapping) else None
    return x if isinstance(x, Mapping) else None


def scale_limits(doc: Mapping[str, Any], raw: bytes, base: Path,
                 configured: Mapping[str, Mapping[str, Any]], *,
                 accepted: Mapping[str, str] | None = None,
                 commit: tuple[str | None, bool | None] = (None, None)) -> dict[str, Any]:
    """The report's scale-limit section: one entry per limit, in the certification order.
    ``accepted``: limit id -> the sign-off configuration's rationale for accepting an
    extrapolated figure; ``commit``: (git commit, dirty) of the certifying code."""
    accepted = dict(accepted or {})
    entries: dict[str, Mapping[str, Any]] = {}
    unknown = []
    for e in doc.get("limits", []):
        if isinstance(e, Mapping) and isinstance(e.get("id"), str):
            if any(lim.id == e["id"] for lim in LIMITS):
                entries[e["id"]] = e
            else:
                unknown.append(e["id"])
    binding = _binding(doc, commit)
    limits = []
    for lim in LIMITS:
        conf = configured.get(lim.id, {})
        conf_target = _num(conf.get("target"))
        e = entries.get(lim.id)
        item: dict[str, Any] = {
            "id": lim.id, "title": lim.title, "seed_figure": lim.seed_figure,
            "seed_method": lim.seed_method, "configured_target": conf.get("target"),
            "unit": conf.get("unit"), "full_scale": False, "accepted": None,
            "extrapolation": None,
        }
        if e is None:
            limits.append({**item, "target": conf.get("target"), "measured": None,
                           "method": None, "pass": False, "status": "missing",
                           "note": "not in the load results", "latencies": {}, "charts": [],
                           "procedure": None})
            continue
        target = _num(e.get("target"))
        measured = _num(e.get("measured"))
        kind = _figure_kind(e)
        claimed = e.get("pass") if isinstance(e.get("pass"), bool) else None
        notes = []
        full_scale = False
        extrap = _extrapolation(e)
        if e.get("target") != conf.get("target"):
            # Bound to the store: the load test ran against what this store is configured for.
            binding["problems"].append(
                f"{lim.title}: the load test ran against the target {e.get('target')}, the "
                f"store is configured for {conf.get('target')}")
        if str(e.get("status", "measured")) not in ("measured", "") or (
                measured is None and e.get("measured") is not None):
            ok, status = False, "missing"
            notes.append(str(e.get("reason") or "not measured"))
        else:
            stated = _num(e.get("profile_target"))
            if stated is None:
                stated = target
            full_scale = kind != "scaled-down" and (conf_target is None or stated is None
                                                    or stated == conf_target)
            if kind == "extrapolated":
                ok, status, why = _judge_extrapolation(extrap, claimed)
                notes.append(why)
                if stated is not None and conf_target is not None and stated != conf_target:
                    notes.append(f"extrapolated to {stated:g} of the configured target "
                                 f"{conf_target:g} (scaled down)")
                if measured is not None:
                    notes.append(f"largest measured: {measured:g}; the figure beyond it is "
                                 "extrapolated, not measured")
            else:
                # A measured figure is judged against the configured target; a scaled-down
                # one against the scaled target the load test stated, shown as such.
                judge_target = conf_target if conf_target is not None else target
                if kind != "measured" and stated is not None:
                    judge_target = stated
                    if conf_target is not None and stated != conf_target:
                        notes.append(f"{kind}: tested against {stated:g} of the configured "
                                     f"target {conf_target:g}")
                ok, why = _judge(lim.id, lim.higher_is_better, judge_target, measured,
                                 claimed)
                if why:
                    notes.append(why)
                status = "pass" if ok else "fail"
            if kind is None:
                ok, status = False, "fail"
                notes.append("the results do not say whether the figure was measured, "
                             "scaled down or extrapolated")
            if not ok and e.get("reason") and str(e["reason"]) not in notes:
                notes.append(str(e["reason"]))
        if kind == "extrapolated" and lim.id in accepted:
            item["accepted"] = accepted[lim.id]
        procedure = e.get("method") if isinstance(e.get("method"), str) and \
            e.get("method") not in FIGURE_KINDS else e.get("description")
        limits.append({
            **item, "target": e.get("target", conf.get("target")),
            "measured": e.get("measured"), "unit": e.get("unit", conf.get("unit")),
            "method": kind, "pass": ok, "status": status,
            "note": "; ".join(n for n in notes if n),
            "full_scale": full_scale, "extrapolation": _extrapolation_summary(extrap),
            "latencies": _latencies(e), "charts": _charts(e, base),
            "procedure": procedure if isinstance(procedure, str) else None,
            "checks": [c for c in e.get("checks", []) if isinstance(c, Mapping)][:20],
        })
    env = doc.get("environment")
    return {
        "source": {"file": "loadtest-results.json", "sha256": hashlib.sha256(raw).hexdigest()},
        "profile": doc.get("profile"),
        "binding": binding,
        "accepted_extrapolations": {k: v for k, v in sorted(accepted.items())},
        "environment": dict(env) if isinstance(env, Mapping) else {},
        "unknown_ids": unknown,
        "limits": limits,
    }


def _judge_extrapolation(x: Mapping[str, Any] | None, claimed: bool | None
                         ) -> tuple[bool, str, str]:
    """(pass, status, why) of an extrapolated figure, from its stated fit."""
    if x is None or not isinstance(x.get("model"), str) or not isinstance(
            x.get("points"), list) or "uncertainty" not in x:
        return False, "fail", ("the extrapolation does not state its model, data points and "
                               "uncertainty")
    state = x.get("status")
    why = str(x.get("reason") or "")
    if state == "insufficient-data":
        return False, "insufficient-data", why or "insufficient data for an extrapolation"
    if state != "supported":
        return False, "fail", why or "the extrapolation does not support the target"
    if claimed is False:
        return False, "fail", why + "; the load test's own checks failed"
    return True, "pass", f"EXTRAPOLATED: {why}"


def _extrapolation_summary(x: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if x is None:
        return None
    return {k: x.get(k) for k in ("label", "model", "points", "uncertainty", "predicted",
                                  "status", "reason", "at", "bound", "claim")
            if k in x}


def limit_policy(section: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(reasons the report fails, reasons it can only be a DEMO) from the scale-limit
    section; see the module docstring for the policy."""
    fail = list(section.get("binding", {}).get("problems", []))
    demo = list(section.get("binding", {}).get("demo", []))
    unaccepted = []
    for lim in section.get("limits", []):
        if lim["status"] != "pass":
            fail.append(f"scale limit {lim['title']} {lim['status'].upper()}"
                        + (f": {lim['note']}" if lim["note"] else ""))
            continue
        if lim["method"] == "scaled-down" or not lim.get("full_scale", False):
            demo.append(f"scale limit {lim['title']}: scaled down (not the configured "
                        "target)")
        if lim["method"] == "extrapolated" and lim.get("accepted") is None:
            unaccepted.append(f"scale limit {lim['title']}: extrapolated, and the sign-off "
                              "configuration does not accept it (accept_extrapolated)")
    # An extrapolation passes only when the sign-offs accept it; in a DEMO it is one more
    # reason the report is not a certification.
    (demo if demo else fail).extend(unaccepted)
    return fail, demo


def accepted_from(settings: Mapping[str, Any]) -> dict[str, str]:
    """``accept_extrapolated`` of the sign-off configuration: {limit id: rationale}."""
    raw = settings.get("accept_extrapolated") or {}
    ids = {lim.id for lim in LIMITS}
    if isinstance(raw, list):
        raw = {str(x): "" for x in raw}
    if not isinstance(raw, Mapping):
        raise ResultsError("accept_extrapolated must map limit ids to a rationale")
    bad = sorted(set(raw) - ids)
    if bad:
        raise ResultsError(f"accept_extrapolated names unknown limits {bad}; limits: "
                           f"{', '.join(sorted(ids))}")
    empty = sorted(k for k, v in raw.items() if not str(v or "").strip())
    if empty:
        raise ResultsError(f"accept_extrapolated: give the rationale the signers accept for "
                           f"{', '.join(empty)}")
    return {str(k): str(v).strip() for k, v in raw.items()}
