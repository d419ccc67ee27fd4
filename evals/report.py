"""``report.html``: one self-contained page (inline CSS and SVG, base64 thumbnails, no scripts).

Sections: headline figures with 95% intervals, confusion heatmap (with the failed column),
per-class precision/recall/F1 bars, reliability diagram, and the worst errors with their
thumbnails, cues, evidence ids and rationales.
"""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

import numpy as np

from kever.evals.record import Record
from kever.evals.rundir import REPORT, Manifest, RunDir, atomic_write
from kever.evals.scoring import HEADLINE, predicted_distribution

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:3px 8px;border:1px solid #ddd;text-align:right}
th{background:#f4f4f4}.l{text-align:left}.gallery{display:flex;flex-wrap:wrap;gap:12px}
.card{width:270px;border:1px solid #ddd;padding:8px;border-radius:4px;font-size:12px}
.card img{max-width:254px;max-height:190px;display:block;margin-bottom:4px}.bad{color:#b00}
.muted{color:#777}
"""


def _fmt(x) -> str:
    return "–" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


def headline_table(metrics: dict) -> str:
    rows = []
    for m in HEADLINE:
        if m in metrics:
            ci = (metrics.get("ci") or {}).get(m)
            rows.append(f"<tr><th class=l>{m}</th><td>{_fmt(metrics[m])}</td>"
                        f"<td class=muted>{'[' + _fmt(ci[0]) + ', ' + _fmt(ci[1]) + ']' if ci else ''}</td></tr>")
    for m in ("accuracy_tie_any", "valence_r", "arousal_r", "n", "n_logged", "n_single_label", "n_tied", "n_failed",
              "seconds_per_sample"):
        if m in metrics:
            rows.append(f"<tr><th class=l>{m}</th><td>{_fmt(metrics[m])}</td><td></td></tr>")
    return "<table><tr><th class=l>metric</th><th>value</th><th>95% CI</th></tr>" + "".join(rows) + "</table>"


def confusion_svg(conf: dict) -> str:
    rows, cols, m = conf["rows"], conf["columns"], np.array(conf["matrix"], dtype=float)
    cell, left, top = 44, 110, 100
    w, h = left + cell * len(cols) + 10, top + cell * len(rows) + 10
    rs = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rs, out=np.zeros_like(m), where=rs > 0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-size="11">']
    for j, c in enumerate(cols):
        x = left + j * cell + cell / 2
        parts.append(f'<text x="{x}" y="{top - 6}" transform="rotate(-45 {x} {top - 6})">{escape(c)}</text>')
    for i, r in enumerate(rows):
        y = top + i * cell
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end">{escape(r)}</text>')
        for j in range(len(cols)):
            f = frac[i, j]
            colour = f"rgb({int(255 - 200 * f)},{int(255 - 120 * f)},255)" if j < len(rows) else f"rgb(255,{int(255 - 180 * f)},{int(255 - 180 * f)})"
            parts.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell}" height="{cell}" fill="{colour}" stroke="#fff"/>')
            if m[i, j]:
                parts.append(f'<text x="{left + j * cell + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle">{int(m[i, j])}</text>')
    parts.append('<text x="4" y="14" class="muted">rows: truth, columns: prediction (colour: row share)</text></svg>')
    return "".join(parts)


def per_class_svg(per_class: dict) -> str:
    labels = list(per_class)
    bw, gap, left, height = 10, 14, 40, 160
    group = 3 * bw + gap
    w = left + group * len(labels) + 90
    colours = {"precision": "#4c78a8", "recall": "#f58518", "f1": "#54a24b"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height + 150}" font-size="11">']
    for t in (0, 0.5, 1.0):
        y = 10 + height * (1 - t)
        parts.append(f'<line x1="{left}" x2="{w}" y1="{y}" y2="{y}" stroke="#eee"/><text x="4" y="{y + 4}">{t:.1f}</text>')
    for i, l in enumerate(labels):
        x0 = left + i * group
        for k, (m, c) in enumerate(colours.items()):
            v = per_class[l].get(m) or 0.0
            parts.append(f'<rect x="{x0 + k * bw}" y="{10 + height * (1 - v)}" width="{bw - 1}" height="{height * v}" fill="{c}"><title>{escape(l)} {m} {v:.3f}</title></rect>')
        x = x0 + 1.5 * bw
        parts.append(f'<text x="{x}" y="{height + 24}" transform="rotate(45 {x} {height + 24})">{escape(l)} ({int(per_class[l].get("support") or 0)})</text>')
    for k, (m, c) in enumerate(colours.items()):
        parts.append(f'<rect x="{left + 90 * k}" y="{height + 132}" width="10" height="10" fill="{c}"/><text x="{left + 90 * k + 14}" y="{height + 141}">{m}</text>')
    parts.append("</svg>")
    return "".join(parts)


def reliability_svg(bins: list[dict]) -> str:
    s, pad = 220, 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{s + 2 * pad}" height="{s + 2 * pad}" font-size="11">',
             f'<rect x="{pad}" y="{pad}" width="{s}" height="{s}" fill="none" stroke="#999"/>',
             f'<line x1="{pad}" y1="{pad + s}" x2="{pad + s}" y2="{pad}" stroke="#aaa" stroke-dasharray="4"/>']
    n = sum(b["count"] for b in bins) or 1
    for b in bins:
        if not b["count"]:
            continue
        x = pad + s * b["lo"]
        bw = s * (b["hi"] - b["lo"])
        hgt = s * b["accuracy"]
        parts.append(f'<rect x="{x}" y="{pad + s - hgt}" width="{bw - 1}" height="{hgt}" fill="#4c78a8" opacity="{0.35 + 0.65 * b["count"] / n:.2f}"><title>conf {b["confidence"]:.2f} acc {b["accuracy"]:.2f} n={b["count"]}</title></rect>')
    parts.append(f'<text x="{pad}" y="{pad + s + 20}">confidence → (bars: accuracy; dashed: perfect calibration)</text></svg>')
    return "".join(parts)


def thumbnail(path: str, side: int = 256) -> str | None:
    try:
        from kever.images import load_image

        img = load_image(path).image
        img.thumbnail((side, side))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    except Exception:  # noqa: BLE001 - a missing thumbnail must not lose the report
        return None


def worst_errors(records: list[Record], labels: list[str], k: int = 12) -> list[tuple[Record, float]]:
    """Wrong or failed samples, ranked by the probability given to the true label (lowest first)."""
    scored = []
    for r in records:
        t = r.truth
        if not t.labels:
            continue
        if not r.ok:
            scored.append((r, -1.0))
            continue
        if str(r.judgment.get("label", "")).lower() in t.labels:
            continue
        q = predicted_distribution(r.judgment, labels)
        p_true = max(q[labels.index(l)] for l in t.labels if l in labels) if any(l in labels for l in t.labels) else 0.0
        scored.append((r, float(p_true)))
    scored.sort(key=lambda x: x[1])
    return scored[:k]


def gallery(records: list[Record], labels: list[str], k: int = 12) -> str:
    cards = []
    for r, p in worst_errors(records, labels, k):
        src = thumbnail(r.image)
        img = f'<img src="{src}" alt="{escape(r.id)}">' if src else '<div class=muted>(no thumbnail)</div>'
        truth = " / ".join(r.truth.labels)
        if not r.ok:
            body = f'<div class=bad>failed: {escape(r.error.type if r.error else "?")}: {escape(r.error.message if r.error else "")}</div>'
        else:
            j = r.judgment
            cues = "".join(f"<li>[{escape(str(c.get('id')))}] {escape(str(c.get('family')))}: {escape(str(c.get('text')))}</li>" for c in (j.get("cues") or [])[:6])
            ev = ", ".join(escape(str(e.get("id"))) for e in (j.get("evidence") or [])[:6])
            body = (f'<div>predicted <b class=bad>{escape(str(j.get("label")))}</b> (p(truth)={p:.2f}, conf {j.get("confidence", 0):.2f})</div>'
                    f'<ul>{cues}</ul><div class=muted>evidence: {ev or "–"}</div>'
                    f'<div>{escape(j.get("rationale") or "")}</div>')
        cards.append(f'<div class=card>{img}<div><b>{escape(r.id)}</b> — truth <b>{escape(truth)}</b></div>{body}</div>')
    return '<div class=gallery>' + "".join(cards) + "</div>" if cards else "<p>No errors.</p>"


def render(manifest: Manifest, records: list[Record], metrics: dict) -> str:
    c = manifest.config
    title = f"kever eval: {c.dataset}{'/' + c.split if c.split else ''} · {c.system}{' (no ' + ', '.join(c.ablate) + ')' if c.ablate else ''} · preset {c.preset}"
    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{escape(title)}</h1>",
             f"<p class=muted>root {escape(c.root)} · labels {escape(', '.join(c.labels))} · models {escape(str(manifest.models))} · "
             f"versions {escape(str(manifest.versions))} · {escape(manifest.updated)}</p>",
             *([f"<p><b>{escape(metrics['selection'])}</b></p>"] if metrics.get("selection") else []),
             "<h2>Headline (95% bootstrap intervals)</h2>", headline_table(metrics),
             f"<p class=muted>Tie policy: {escape(metrics.get('tie_policy', ''))}</p>"]
    if "confusion" in metrics:
        parts += ["<h2>Confusion matrix</h2>", confusion_svg(metrics["confusion"])]
    if "per_class" in metrics:
        parts += ["<h2>Per-class precision / recall / F1</h2>", per_class_svg(metrics["per_class"])]
    if metrics.get("reliability"):
        parts += ["<h2>Reliability diagram</h2>", reliability_svg(metrics["reliability"])]
    parts += ["<h2>Worst errors</h2>", gallery(records, c.labels), "</body></html>"]
    return "\n".join(parts)


def write_report(rd: RunDir, manifest: Manifest, records: list[Record], metrics: dict) -> Path:
    path = Path(rd.path) / REPORT
    atomic_write(path, render(manifest, records, metrics))
    return path
