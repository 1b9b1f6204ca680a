"""One SVG chart per limit (matplotlib, Agg backend; no display needed).

SVG because the certification report embeds a limit's chart only as SVG (vector, so it
stays sharp in the PDF/A and carries no colour profile of its own)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def chart(res: Mapping[str, Any], out_dir: Path) -> str | None:
    """Draw ``res``'s chart into ``out_dir/<id>.svg``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{res['id']}.svg"
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    d = res.get("details") or {}
    kind = res.get("figure")
    title = f"{res['title']} ({res['profile']}, {kind})"
    try:
        if res.get("status") != "measured":
            ax.axis("off")
            ax.text(0.5, 0.5, f"not measured:\n{str(res.get('reason'))[:200]}",
                    ha="center", va="center", wrap=True)
        elif res["id"] == "artifact-size":
            ups = d.get("upload_seconds") or []
            downs = d.get("download_seconds") or []
            size = float(d.get("artifact_bytes") or 0)
            ax.bar([x - 0.2 for x in range(len(ups))], [size / s / 1e6 for s in ups], 0.4,
                   label="upload")
            ax.bar([x + 0.2 for x in range(len(downs))], [size / s / 1e6 for s in downs], 0.4,
                   label="read-back")
            ax.set_xlabel("artifact #")
            ax.set_ylabel("MB/s")
            rss = d.get("server_peak_rss")
            ax.set_title(f"{size / 1e6:.0f} MB artifacts; server peak RSS "
                         f"{(rss or 0) / 1e6:.0f} MB", fontsize=9)
            ax.legend()
        elif res["id"] == "total-storage":
            g = d.get("growth") or []
            ex = d.get("extrapolation") or {}
            gx = [lv["artifacts"] for lv in g]
            ax.plot(gx, [lv["write_p99_ms"] for lv in g], "o", label="write p99 (measured)")
            fit = ex.get("fit")
            if fit and ex.get("at"):
                nt = float(ex["at"])
                lo = math.log10(min(gx))
                grid = [10 ** (lo + i * (math.log10(nt) - lo)
                               / 50) for i in range(51)]
                ax.plot(grid, [fit["a"] + fit["b"] * math.log10(x) for x in grid], "--",
                        label=f"fit, EXTRAPOLATED ({ex.get('status')})")
                unc = ex.get("uncertainty") or {}
                if unc.get("high") is not None:
                    ax.errorbar([nt], [ex["predicted"]],
                                yerr=[[ex["predicted"] - unc["low"]],
                                      [unc["high"] - ex["predicted"]]],
                                fmt="x", color="black", capsize=3, label="95 % interval")
                ax.axvline(nt, color="grey", lw=0.8)
                ax.axhline(float(ex.get("bound", 0)), color="red", lw=0.8,
                           label="p99 bound")
            ax.set_xscale("log")
            ax.set_xlabel("artifacts in store")
            ax.set_ylabel("write p99 (ms)")
            ax2 = ax.twinx()
            ax2.plot(gx, [lv["metadata_bytes"] / 1e6 for lv in g], "s:", color="green",
                     label="metadata MB")
            ax2.set_ylabel("metadata (MB)")
            ax.legend(fontsize=7, loc="upper left")
        elif res["id"] == "write-throughput":
            steps = d.get("steps") or []
            ox = [s["offered_rate"] or 0 for s in steps]
            ax.plot(ox, [s["achieved_rate"] or 0 for s in steps], "o-",
                    label="achieved (acked/s)")
            ax.plot(ox, ox, ":", color="grey", label="offered")
            ax.set_xlabel("offered writes/s")
            ax.set_ylabel("writes/s")
            ax2 = ax.twinx()
            ax2.plot(ox, [s["p99_ms"] or 0 for s in steps], "s--", color="red", label="p99 ms")
            ax2.axhline(float(d.get("p99_bound_ms") or 0), color="red", lw=0.6)
            ax2.set_ylabel("p99 (ms)")
            ax.legend(fontsize=7, loc="upper left")
        elif res["id"] == "query-response":
            per = d.get("per_query_type_ms") or {}
            names = list(per)
            ax.barh(names, [per[n]["p99_ms"] or 0 for n in names], label="p99")
            ax.barh(names, [per[n]["p95_ms"] or 0 for n in names], label="p95")
            ax.axvline(float(res["target"]) * 1000, color="red", lw=0.8, label="target")
            ax.set_xscale("log")
            ax.set_xlabel("ms")
            ax.legend(fontsize=7)
        elif res["id"] == "audit-trail":
            lv = d.get("levels") or []
            lx = [x["log_size"] for x in lv]
            ax.plot(lx, [x["proof_p50_ms"] for x in lv], "o-", label="proof p50 ms")
            ax.plot(lx, [x["proof_p99_ms"] for x in lv], "o--", label="proof p99 ms")
            ax.set_xscale("log")
            ax.set_xlabel("log size (records)")
            ax.set_ylabel("ms")
            ax2 = ax.twinx()
            ax2.plot(lx, [x["max_proof_hashes"] for x in lv], "s:", color="green",
                     label="proof hashes")
            ax2.plot(lx, [x["log2_bound"] for x in lv], "_", color="black", ms=14,
                     label="ceil(log2 n)")
            ax2.set_ylabel("hashes")
            ax.legend(fontsize=7, loc="upper left")
            ax2.legend(fontsize=7, loc="lower right")
        else:  # concurrent-writers, artifact-count: latency summary bars
            lat = res.get("latency_ms") or {}
            keys = ["p50", "p95", "p99", "max"]
            vals = [lat.get(k) or 0 for k in keys]
            if res["id"] == "artifact-count":
                q = d.get("query_latency_ms") or {}
                ax.bar([k + "\nwrite" for k in keys], vals, label="write")
                ax.bar([k + "\nquery" for k in keys], [q.get(k + "_ms") or 0 for k in keys],
                       label="query")
                ax.legend(fontsize=7)
            else:
                ax.bar(keys, vals)
            ax.set_ylabel("latency (ms)")
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        # No date in the file and a fixed id salt: the same figures give the same bytes.
        with matplotlib.rc_context({"svg.hashsalt": res["id"]}):
            fig.savefig(path, format="svg", metadata={"Date": None})
    finally:
        plt.close(fig)
    return str(path)
