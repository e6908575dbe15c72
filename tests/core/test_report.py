"""Charts and the one-page HTML report of a run."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.errors import RunError
from core.views import report


def test_confusion_heatmap_counts_and_row_normalised():
    cm = [[3, 1], [0, 0]]
    counts = report.fig_confusion(cm, ["a", "b"], "t")
    assert counts.data[0].z[0] == (3.0, 1.0) or list(counts.data[0].z[0]) == [3.0, 1.0]
    norm = report.fig_confusion(cm, ["a", "b"], "t", normalize=True)
    z = [list(r) for r in norm.data[0].z]
    assert z[0] == [0.75, 0.25] and z[1] == [0.0, 0.0]      # an empty row stays 0, no division by zero
    assert norm.layout.yaxis.autorange == "reversed"         # first class on top, like a table


def test_class_count_and_per_class_bars():
    fig = report.fig_class_counts({"normal": 10, "crack": 2}, {"normal": 10, "crack": 1})
    assert [list(t.y) for t in fig.data] == [[10, 2], [10, 1]]
    m = {"per_class": {"a": {"f1": 0.5}, "b": {"f1": 1.0}}}
    fig = report.fig_per_class({"x": m}, ["a", "b"], "f1")
    assert list(fig.data[0].y) == [0.5, 1.0]


def test_report_is_one_self_contained_page(finished_run, tmp_path):
    html = report.build_report(finished_run)
    for section in ("Setup", "Data", "Verdict", "Leaderboard", "smote vs baseline", "Per-class"):
        assert section in html
    assert html.count("plotly.js v") == 1                     # plotly.js embedded once
    assert "<script src=" not in html                         # nothing fetched: works offline
    out = report.write_report(finished_run, tmp_path / "r.html")
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    copy = Path(shutil.copytree(finished_run, tmp_path / "run"))
    assert report.write_report(copy) == copy / "report.html"
    assert not [p for p in copy.iterdir() if p.name.endswith(".part")]


def test_report_of_an_unfinished_run_says_so(tmp_path):
    with pytest.raises(RunError, match="no results yet"):
        report.build_report(tmp_path)


def test_loss_curves_are_one_line_per_method_class_seed_and_series():
    rows = [{"method": "dcgan", "class": "crack", "seed": seed, "step": step, "series": series, "value": v}
            for seed in (0, 1) for step in (1, 2) for series, v in (("d_loss", seed + step), ("g_loss", 9.0),
                                                                     ("diversity", 0.3))]
    lines = {t.name: (list(t.x), list(t.y)) for t in report.fig_losses(rows).data}
    assert set(lines) == {f"dcgan · crack · s{s} · {k}" for s in (0, 1) for k in ("d_loss", "g_loss")}
    assert lines["dcgan · crack · s1 · d_loss"] == ([1, 2], [2, 3])     # seeds never join into one line


def test_sample_timelines_group_by_generator_in_step_order():
    grids = [{"method": "dcgan", "class": "crack", "seed": 0, "step": 4, "path": "a/seed0_step000004.png"},
             {"method": "dcgan", "class": "crack", "seed": 0, "step": 2, "path": "a/seed0_step000002.png"},
             {"method": "dcgan", "class": "crack", "seed": 1, "step": 2, "path": "a/seed1_step000002.png"},
             {"method": "cgan", "class": "all", "seed": 0, "step": 2, "path": "b/seed0_step000002.png"},
             {"method": "dcgan", "class": "crack", "seed": 0, "step": 4, "path": "again.png"}]   # resumed
    timelines = report.sample_timelines(grids)
    assert list(timelines) == [("dcgan", "crack", 0), ("dcgan", "crack", 1), ("cgan", "all", 0)]
    assert [(g["step"], g["path"]) for g in timelines[("dcgan", "crack", 0)]] == [
        (2, "a/seed0_step000002.png"), (4, "again.png")]
    assert timelines[("dcgan", "crack", 1)][0]["seed"] == 1
    assert report.sample_timelines([]) == {}
