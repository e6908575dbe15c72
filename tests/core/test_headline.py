"""core.views.headline: the verdict as a headline in the user's words, the collapse flag, the export's default method;
and what an export lets out (no server path, no workspace id, no secret in any of its text files)."""
from __future__ import annotations

import shutil
import zipfile

import pytest

from core.views import headline as H
from core.views import runs

CLASSES = ["normal", "crack", "spot"]


def _block(cm, label=None, gain=0.0, ci=(-0.05, 0.05), seeds=3):
    b = {"confusion_matrix": cm, "f1_macro": 0.5}
    if label:
        b["verdict"] = {"label": label, "gain": gain, "ci": list(ci), "against": "class_weighted", "mdg": 0.05,
                        "n_seeds": seeds, "folds": 1, "text": f"long text of {label}"}
    return b


GOOD = [[18, 1, 1], [2, 16, 2], [1, 2, 17]]
COLLAPSED = [[20, 0, 0], [19, 1, 0], [20, 0, 0]]        # 59 of 60 test images called normal


def _metrics(base=GOOD, **methods):
    return {"classes": CLASSES, "strongest_baseline": "class_weighted",
            "baselines": {"paper": _block(GOOD), "class_weighted": _block(base)}, "methods": methods}


@pytest.mark.parametrize("label, words, tone", [("helps", "Use it", "success"), ("hurts", "Don't use it", "warning"),
                                                ("no clear difference", "Can't tell yet", "info")])
def test_the_headline_is_the_verdict_in_the_users_words(label, words, tone):
    gain = {"helps": 0.08, "hurts": -0.09}.get(label, 0.01)
    m = _metrics(smote=_block(GOOD, label, gain, (gain - 0.03, gain + 0.03)))
    h = H.headline(m, "smote")
    assert (h.words, h.tone, h.details) == (words, tone, f"long text of {label}")
    assert f"{gain:+.3f}" in h.line and "class_weighted" in h.line
    if label == "no clear difference":        # what would tell: more seeds, folds, test images
        assert "more seeds (this run had 3)" in h.line and "folds" in h.line and "test images" in h.line
    assert "collapsed" not in h.line


def test_a_classifier_that_puts_ninety_percent_in_one_class_is_flagged_and_the_verdict_says_so():
    m = _metrics(base=COLLAPSED, smote=_block(GOOD, "helps", 0.3, (0.2, 0.4)))
    assert H.collapsed(m) == {"class_weighted": "normal"}
    assert H.collapsed_class([[9, 1], [8, 2]], ["a", "b"]) is None         # 17 of 20 = 85%: not collapsed ...
    assert H.collapsed_class([[9, 1], [9, 1]], ["a", "b"]) == "a"          # ... 18 of 20 = 90%: collapsed
    assert H.collapsed_class([[8, 2], [8, 2]], ["a", "b"]) is None
    h = H.headline(m, "smote")
    assert h.collapsed_baseline == "class_weighted" and "collapsed" in h.line and "predicts normal" in h.line
    # wherever its numbers appear: the leaderboard row says it
    m["leaderboard"] = [{"name": "class_weighted", "kind": "baseline", "f1_macro": 0.2, "precision_macro": 0.1,
                         "recall_macro": 0.3, "accuracy": 0.35},
                        {"name": "smote", "kind": "method", "f1_macro": 0.5, "precision_macro": 0.5,
                         "recall_macro": 0.5, "accuracy": 0.5, "gain": {"class_weighted": 0.3}}]
    notes = {r["name"]: r["note"] for r in runs.leaderboard_rows(m)}
    assert notes == {"class_weighted": "collapsed: predicts normal for almost everything", "smote": ""}


def test_seeds_are_pooled_before_the_collapse_is_judged():
    block = {"seeds": {"0": {"confusion_matrix": COLLAPSED}, "1": {"confusion_matrix": GOOD}}}
    assert H.collapsed({"classes": CLASSES, "baselines": {"paper": block}, "methods": {}}) == {}


def test_the_export_defaults_to_the_method_that_helps_most_else_the_real_images_with_the_reason():
    m = _metrics(adasyn=_block(GOOD, "helps", 0.03, (0.01, 0.05)), smote=_block(GOOD, "helps", 0.06, (0.02, 0.1)),
                 mixup=_block(GOOD, "hurts", -0.1, (-0.2, -0.05)))
    best, why = H.export_choice(m, ["adasyn", "mixup", "smote"])     # alphabetically first would be adasyn
    assert best == "smote" and "Use it" in why and "+0.060" in why
    assert H.export_choice(m, ["adasyn", "mixup"])[0] == "adasyn"     # smote made no images to export
    none, why = H.export_choice(_metrics(mixup=_block(GOOD, "hurts", -0.1)), ["mixup"])
    assert none == "none" and why.startswith("Real images only") and "mixup: Don't use it" in why


def test_an_export_carries_no_server_path_no_workspace_id_and_no_secret(finished_run, tmp_path, monkeypatch):
    """The run as the app makes it: its data uploaded into a workspace (whose id works like a password), the run
    under <home>/<workspace>/runs/. Every text file of the zip is read for the id, the home, any server path."""
    from core.views.export import export_zip
    from core.rundir import RunDir
    from core.workspace import Workspace
    home = tmp_path / "server_home"
    monkeypatch.setenv("DEFECTAUG_HOME", str(home))
    ws = Workspace.create(home)
    ws.ensure()
    data = ws.uploads / "my_tiles"
    shutil.copytree(RunDir(finished_run).config()["data"], data)
    run = ws.run_dir("a" * 32)
    shutil.copytree(finished_run, run)
    cfg = (run / "config.json").read_text(encoding="utf-8")
    (run / "config.json").write_text(cfg.replace(RunDir(finished_run).config()["data"], str(data)), encoding="utf-8")
    assert ws.id in (run / "config.json").read_text(encoding="utf-8")          # the danger is real
    out = export_zip(run, "smote", tmp_path / "out.zip").path
    secrets = [ws.id, str(home), str(tmp_path), str(run), str(finished_run)]
    with zipfile.ZipFile(out) as zf:
        texts = [n for n in zf.namelist() if n.rsplit(".", 1)[-1] in ("json", "csv", "txt", "md", "html")]
        assert {"config.json", "metrics.json", "manifest.csv", "README.txt"} <= set(texts)
        for name in texts:
            text = zf.read(name).decode("utf-8")
            for secret in secrets:
                assert secret not in text, f"{name} holds {secret}"
            assert "/tmp/" not in text and "server_home" not in text, name
        import json
        assert json.loads(zf.read("config.json"))["data"] == "my_tiles"     # the dataset by its name
