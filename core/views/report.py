"""Charts of a run (plotly figures) and its one-page HTML report.

The same figure functions serve the app's pages and the report, so what a user sees in the browser
is what they send to a colleague:

    fig_confusion(cm, classes, "baseline", normalize=True)
    fig_per_class({"baseline": m1, "smote": m2}, classes, "f1")
    html = build_report(run_dir)          # self-contained: plotly.js embedded once, works offline
    write_report(run_dir, "report.html")
"""
from __future__ import annotations

import html
import math
import time
from pathlib import Path

import plotly.graph_objects as go

from . import runs
from ..errors import RunError
from ..files import atomic_write
from ..rundir import RunDir

PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D"]


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------
def plain(text: object) -> str:
    """`text` as Plotly shows it literally: Plotly reads labels, legend names and titles as a subset of HTML (a
    class folder named '<a href="https:evil.com">Login again' became a link in the page and the report)."""
    return html.escape(str(text), quote=False)


def _plain_all(value):
    """Every string in a trace's labels escaped (`plain`), numbers as they are; nested lists kept nested."""
    if isinstance(value, str):
        return plain(value)
    if isinstance(value, (list, tuple)):
        return [_plain_all(v) for v in value]
    return value


def _layout(fig: go.Figure, title: str, height: int = 360) -> go.Figure:
    """The common look, and every user-controlled string a trace shows (its category labels, legend name and
    texts: class, method and model names) escaped for Plotly's HTML. Templates (hovertemplate) are ours."""
    for trace in fig.data:
        for attr in ("x", "y", "name", "text"):
            value = getattr(trace, attr, None)
            if value is not None and not hasattr(value, "dtype"):
                trace[attr] = _plain_all(list(value) if isinstance(value, tuple) else value)
    fig.update_layout(title=plain(title), height=height, margin=dict(l=40, r=20, t=50, b=40),
                      template="plotly_white", legend=dict(orientation="h", y=-0.2))
    return fig


def fig_class_counts(before: dict[str, int], after: dict[str, int] | None = None,
                     title: str = "Images per class") -> go.Figure:
    """Bars of the class counts, and beside them the counts after simulating the imbalance."""
    classes = list(before)
    fig = go.Figure()
    fig.add_bar(name="dataset", x=classes, y=[before[c] for c in classes], marker_color=PALETTE[0],
                text=[before[c] for c in classes], textposition="outside")
    if after is not None:
        fig.add_bar(name="training, after the test split and imbalance", x=classes,
                    y=[after.get(c, 0) for c in classes],
                    marker_color=PALETTE[1], text=[after.get(c, 0) for c in classes], textposition="outside")
    fig.update_layout(barmode="group", yaxis_title="images")
    return _layout(fig, title)


def fig_confusion(cm: list[list[float]], classes: list[str], title: str, normalize: bool = False) -> go.Figure:
    """Heatmap, rows = true class, columns = predicted; counts or row-normalised fractions."""
    counts = [[float(v) for v in row] for row in cm]
    if normalize:
        z = [[v / sum(row) if sum(row) else 0.0 for v in row] for row in counts]
        text = [[f"{v:.2f}" for v in row] for row in z]
    else:
        z = counts
        text = [[f"{int(v)}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(z=z, x=classes, y=classes, text=text, texttemplate="%{text}",
                               colorscale="Blues", showscale=False, zmin=0,
                               zmax=1.0 if normalize else max(1.0, max(max(r) for r in z) if z else 1.0),
                               hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>"))
    fig.update_xaxes(title="predicted", side="bottom", type="category")
    fig.update_yaxes(title="true", autorange="reversed", type="category")
    size = 140 + 60 * len(classes)
    return _layout(fig, title, height=min(700, max(320, size)))


def fig_per_class(models: dict[str, dict], classes: list[str], metric: str = "f1") -> go.Figure:
    """Grouped bars of one per-class metric (precision, recall or f1) for several models."""
    fig = go.Figure()
    for i, (label, m) in enumerate(models.items()):
        pc = m.get("per_class", {})
        fig.add_bar(name=label, x=classes, y=[pc.get(c, {}).get(metric, 0.0) for c in classes],
                    marker_color=PALETTE[i % len(PALETTE)])
    fig.update_layout(barmode="group", yaxis=dict(range=[0, 1.05], title=metric))
    return _layout(fig, f"Per-class {metric}")


def fig_leaderboard(metrics: dict) -> go.Figure:
    """Macro F1 of every method and baseline, mean with the seed-to-seed std as error bar."""
    rows = metrics.get("leaderboard", [])
    names = [r["name"] for r in rows]
    colors = [PALETTE[1] if r["kind"] == "method" else PALETTE[0] for r in rows]
    fig = go.Figure(go.Bar(x=names, y=[r["f1_macro"] for r in rows], marker_color=colors,
                           error_y=dict(type="data", array=[r.get("f1_std", 0.0) for r in rows])))
    fig.update_layout(yaxis=dict(range=[0, 1.05], title="macro F1"))
    return _layout(fig, "Macro F1 (mean ± std over seeds)")


def fig_embedding(points: list[dict], title: str = "Real and synthetic images, t-SNE of the classifier's features"
                  ) -> go.Figure:
    """The 2-D embedding of a method's first seed: one colour per class, real as circles, synthetic as crosses.
    Synthetic points far from their class's real ones, or piled in one spot, are what the numbers say."""
    fig = go.Figure()
    classes = sorted({p["class"] for p in points})
    for i, c in enumerate(classes):
        for origin, symbol in (("real", "circle"), ("synthetic", "x")):
            pts = [p for p in points if p["class"] == c and p["origin"] == origin]
            if pts:
                fig.add_scatter(x=[p["x"] for p in pts], y=[p["y"] for p in pts], mode="markers",
                                name=f"{c} · {origin}", marker=dict(color=PALETTE[i % len(PALETTE)], symbol=symbol,
                                                                     size=6 if origin == "real" else 7))
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return _layout(fig, title, height=460)


def fig_latent(points: list[dict], title: str) -> go.Figure:
    """A generator's latent codes in 2-D (t-SNE), one colour per class."""
    fig = go.Figure()
    for i, c in enumerate(sorted({p["class"] for p in points})):
        pts = [p for p in points if p["class"] == c]
        fig.add_scatter(x=[p["x"] for p in pts], y=[p["y"] for p in pts], mode="markers", name=c,
                        marker=dict(color=PALETTE[i % len(PALETTE)], size=6))
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return _layout(fig, title, height=460)


def _group_label(column: str, value) -> str:
    # a bare "0" or "1" in a legend reads as a value, not as the seed it is
    return f"s{value}" if column == "seed" else str(value)


def fig_lines(rows: list[dict], x: str, group: list[str], title: str, y_title: str = "") -> go.Figure:
    """Line chart of long-form rows: one line per distinct `group` value tuple (a seed shows as `s<n>`)."""
    series: dict[str, tuple[list, list]] = {}
    for r in rows:
        key = " · ".join(_group_label(g, r.get(g, 0 if g == "seed" else "")) for g in group)
        xs, ys = series.setdefault(key, ([], []))
        xs.append(r[x])
        ys.append(r["value"])
    fig = go.Figure()
    for i, (key, (xs, ys)) in enumerate(series.items()):
        fig.add_scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 30 else "lines", name=key,
                        line=dict(color=PALETTE[i % len(PALETTE)]))
    fig.update_layout(xaxis_title=x, yaxis_title=y_title)
    return _layout(fig, title)


def loss_series(rows: list[dict]) -> list[str]:
    """The loss monitors among a run's (d_loss and g_loss of a GAN, a diffusion model's loss, ...): every series
    named like a loss."""
    return sorted({r["series"] for r in rows if r["series"] == "loss" or r["series"].endswith("_loss")})


def fig_losses(rows: list[dict], series: tuple[str, ...] | None = None) -> go.Figure:
    """Generative training losses (monitor events) per method, class and seed: each seed its own line; by
    default every loss series (`loss_series`)."""
    series = tuple(loss_series(rows)) if series is None else series
    title = "Generator / discriminator losses" if {"d_loss", "g_loss"} & set(series) else "Training loss"
    return fig_lines([r for r in rows if r["series"] in series], "step", ["method", "class", "seed", "series"],
                     title, "loss")


def sample_timelines(grids: list[dict]) -> dict[tuple[str, str, int], list[dict]]:
    """The sample grids of a run (`runs.sample_grids`) per (method, class, seed), each in step order.

    Groups keep the order in which they first appear; a step written twice (a resumed run writing the
    same grid again) keeps the later grid.
    """
    out: dict[tuple[str, str, int], dict[int, dict]] = {}
    for g in grids:
        key = (g["method"], g["class"], g["seed"])
        out.setdefault(key, {})[g["step"]] = g
    return {key: [by_step[s] for s in sorted(by_step)] for key, by_step in out.items()}


def fig_epochs(rows: list[dict], series: str = "loss") -> go.Figure:
    return fig_lines([r for r in rows if r["series"] == series], "epoch", ["model"],
                     f"Classifier {series} per epoch", series)


# ---------------------------------------------------------------------------------------------
# The HTML report
# ---------------------------------------------------------------------------------------------
_CSS = """
body { font-family: -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; }
th { background: #f4f6f8; } td:first-child, th:first-child { text-align: left; }
.muted { color: #666; } .verdict { background: #f6f8fa; border-left: 4px solid #4C78A8; padding: 0.5em 1em; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; } .grid > div { flex: 1 1 480px; min-width: 0; }
.warn { color: #8a5300; }
"""


def _table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p class='muted'>(none)</p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                v = ""                               # never "None" or "nan" on the page
            elif isinstance(v, float):
                v = f"{v:.3f}"
            cells.append(f"<td>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


class _Figures:
    """Turns figures into HTML divs; plotly.js goes inline with the first one only."""

    def __init__(self) -> None:
        self.first = True

    def __call__(self, fig: go.Figure) -> str:
        out = fig.to_html(full_html=False, include_plotlyjs=self.first, config={"displaylogo": False})
        self.first = False
        return f"<div>{out}</div>"


def _headlines(metrics: dict) -> str:
    """Each method's verdict as its headline (Use it / Don't use it / Can't tell yet) and one line."""
    from .headline import headline
    out = []
    for name in metrics.get("methods") or {}:
        h = headline(metrics, name)
        out.append(f"<p class='verdict'><b>{html.escape(h.words)}</b>: {html.escape(name)}. "
                   f"{html.escape(h.line)}</p>")
    return "".join(out)


def build_report(run_dir: str | Path) -> str:
    """The report of a finished run as one self-contained HTML page."""
    run_dir = Path(run_dir)
    metrics = RunDir(run_dir).metrics()
    if metrics is None:
        raise RunError("this run has no results yet (metrics.json is missing); wait for it to finish")
    cfg = RunDir(run_dir).config()
    classes = metrics.get("classes", [])
    proto = metrics.get("protocol", {})
    strongest = metrics.get("strongest_baseline") or next(iter(metrics.get("baselines", {})), None)
    fig = _Figures()
    parts = [f"<h1>DefectAug report</h1><p class='muted'>run {html.escape(run_dir.name)} · "
             f"generated {time.strftime('%Y-%m-%d %H:%M')}</p>"]

    settings = [{"setting": k, "value": v} for k, v in (
        ("data", Path(str(cfg.get("data", ""))).name), ("methods", ", ".join(cfg.get("methods", []))),
        ("seeds", ", ".join(str(s) for s in cfg.get("seeds", []))),
        ("imbalance ratio", "none (the data's own counts)" if cfg.get("ratio") is None else cfg.get("ratio")),
        ("target balance ratio", cfg.get("target_ratio")), ("image size", cfg.get("image_size")),
        ("preset", cfg.get("preset")), ("classifier epochs", proto.get("epochs")),
        ("groups (images of one part)", cfg.get("groups", "none")),
        ("run time", runs.format_seconds(metrics.get("seconds_total"))))]
    parts.append("<h2>Setup</h2>" + _table(settings))
    counts_rows = [{"class": c, "train (real)": proto.get("train_counts", {}).get(c, ""),
                    "synthetic needed": proto.get("needed", {}).get(c, ""),
                    "test (real)": proto.get("test_counts", {}).get(c, "")} for c in classes]
    parts.append("<h2>Data</h2>" + _table(counts_rows))

    parts.append("<h2>Verdict</h2>")
    parts.append(_headlines(metrics))
    lines = runs.verdict_lines(metrics)
    parts.append("".join(f"<p class='verdict'>{html.escape(t)}</p>" for t in lines) or
                 "<p class='muted'>No method results.</p>")
    leak = runs.leakage_text(metrics)
    if leak:
        parts.append(f"<p class='leakage'>{html.escape(leak)}</p>")
    parts.append("<h2>Leaderboard</h2>" + _table(runs.leaderboard_rows(metrics)))
    detect = runs.detection_rows(metrics)
    if detect:
        parts.append("<h2>Defect or normal</h2><p class='muted'>" + html.escape(runs.detection_help())
                     + "</p>" + _table(detect))
    quality = runs.quality_rows(metrics)
    if quality:
        first = next(m for m in metrics["methods"].values() if m.get("quality"))
        parts.append("<h2>Synthetic image quality</h2><p class='muted'>Features: "
                     f"{html.escape(first['quality']['features'])}; means over seeds.</p>" + _table(quality)
                     + _table([{"column": k, "what it means": m, "better": d}
                               for k, (m, d) in runs.QUALITY_HELP.items()]))
    if metrics.get("leaderboard"):
        parts.append(fig(fig_leaderboard(metrics)))

    if strongest:
        base = metrics["baselines"][strongest]
        for name, m in metrics.get("methods", {}).items():
            if name == "none":
                continue
            parts.append(f"<h2>{html.escape(name)} vs baseline ({html.escape(strongest)})</h2><div class='grid'>")
            parts.append(fig(fig_confusion(runs.seed_confusion(metrics, strongest, None), classes,
                                           f"baseline {strongest} (all seeds)")))
            parts.append(fig(fig_confusion(runs.seed_confusion(metrics, name, None), classes,
                                           f"{name} (all seeds)")))
            parts.append("</div>")
            parts.append(fig(fig_per_class({f"baseline {strongest}": base, name: m}, classes, "f1")))
            rows = []
            for c in classes:
                b, a = base["per_class"][c], m["per_class"][c]
                rows.append({"class": c, "support": a.get("support", ""),
                             "precision (base)": b["precision"], f"precision ({name})": a["precision"],
                             "recall (base)": b["recall"], f"recall ({name})": a["recall"],
                             "F1 (base)": b["f1"], f"F1 ({name})": a["f1"]})
            parts.append(_table(rows))

    warns = list(metrics.get("warnings") or [])
    warns += [f"{f.get('method')} / {f.get('class')}: {f.get('reason')} -> {f.get('fallback')}"
              for f in metrics.get("fallbacks") or []]
    if warns:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li class='warn'>{html.escape(str(w))}</li>"
                                                       for w in warns) + "</ul>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>DefectAug report {run_dir.name[:8]}</title>"
            f"<style>{_CSS}</style></head><body>{body}</body></html>")


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write `build_report` to `out` (default `<run_dir>/report.html`); returns the path."""
    out = Path(out) if out is not None else Path(run_dir) / "report.html"
    return atomic_write(out, build_report(run_dir))
