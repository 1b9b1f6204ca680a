// Depository dashboard charts: plain SVG from the page's JSON data block; no libraries.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = { ok: "#3f9b5a", warning: "#d9a400", high: "#e07b00", critical: "#c62828",
                   pass: "#3f9b5a", fail: "#c62828", none: "#9aa5b1" };

  function el(name, attrs, text) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // rows: [{label, value (percent, may be null), color, note}]; a line marks 100 %.
  function bars(container, rows, maxPct) {
    const rowH = 22, left = 150, width = 560, right = 70;
    const plot = width - left - right;
    const h = rows.length * rowH + 24;
    const svg = el("svg", { viewBox: `0 0 ${width} ${h}`, role: "img" });
    const scale = (p) => left + plot * Math.min(p, maxPct) / maxPct;
    rows.forEach((r, i) => {
      const y = i * rowH + 4;
      svg.appendChild(el("text", { x: 4, y: y + 14 }, r.label));
      if (r.value === null || r.value === undefined) {
        svg.appendChild(el("text", { x: left + 4, y: y + 14, class: "na" }, r.note || "no figure"));
        return;
      }
      const w = Math.max(1, scale(r.value) - left);
      const bar = el("rect", { x: left, y: y + 3, width: w.toFixed(1), height: rowH - 8,
                               fill: r.color, "data-value": r.value });
      bar.appendChild(el("title", {}, `${r.label}: ${r.value.toFixed(1)} %`));
      svg.appendChild(bar);
      svg.appendChild(el("text", { x: Math.min(scale(r.value), left + plot) + 4, y: y + 14 },
                         `${r.value.toFixed(1)} %` + (r.value > maxPct ? " ▸" : "")));
    });
    const x100 = scale(100);
    svg.appendChild(el("line", { x1: x100, x2: x100, y1: 0, y2: h - 18, stroke: "#333",
                                 "stroke-dasharray": "3 3" }));
    svg.appendChild(el("text", { x: x100 - 14, y: h - 4 }, "100 %"));
    container.appendChild(svg);
  }

  function latency(container, limits) {
    const rows = limits.filter((l) => l.latency_ms && l.latency_ms.p99 !== null);
    if (!rows.length) { container.appendChild(el("svg", { viewBox: "0 0 560 24" })).appendChild(
      el("text", { x: 4, y: 16 }, "no latency figures in the load results")); return; }
    const max = Math.max(...rows.map((l) => l.latency_ms.p99)) || 1;
    const rowH = 30, left = 150, width = 560, plot = width - left - 80;
    const svg = el("svg", { viewBox: `0 0 ${width} ${rows.length * rowH + 8}`, role: "img" });
    rows.forEach((l, i) => {
      const y = i * rowH + 4;
      svg.appendChild(el("text", { x: 4, y: y + 16 }, l.id));
      [["p50", "#7fb3e6"], ["p95", "#3f7fc4"], ["p99", "#1d4f8f"]].forEach(([k, c], j) => {
        const v = l.latency_ms[k];
        if (v === null) return;
        svg.appendChild(el("rect", { x: left, y: y + j * 8, width: Math.max(1, plot * v / max).toFixed(1),
                                     height: 7, fill: c, "data-value": v }));
      });
      svg.appendChild(el("text", { x: left + plot + 6, y: y + 16 }, `${l.latency_ms.p99.toFixed(1)} ms`));
    });
    container.appendChild(svg);
  }

  function draw() {
    const block = document.getElementById("chart-data");
    if (!block) return;
    const data = JSON.parse(block.textContent);
    const live = document.getElementById("chart-live");
    if (live) bars(live, data.live.map((s) => ({
      label: s.id, value: s.percent, color: COLORS[s.alert_level] || COLORS.none,
      note: s.threshold === null ? "no threshold" : "no figure" })), 120);
    const load = document.getElementById("chart-load");
    if (load) {
      if (!data.load.length) {
        load.appendChild(el("svg", { viewBox: "0 0 560 24" })).appendChild(
          el("text", { x: 4, y: 16 }, "no load results configured"));
      } else {
        bars(load, data.load.map((l) => ({
          label: l.id,
          value: (l.measured !== null && l.profile_target) ? 100 * l.measured / l.profile_target : null,
          color: l.status !== "measured" ? COLORS.none : (l.pass ? COLORS.pass : COLORS.fail),
          note: l.status !== "measured" ? "not measured" : "no target" })), 200);
      }
    }
    const lat = document.getElementById("chart-latency");
    if (lat) latency(lat, data.load);
    document.body.setAttribute("data-charts", "drawn");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
