"""The method suggestion rests on what this project measured, and on a workspace's own finished runs."""
from __future__ import annotations

from core.advice import MEASURED, measured, measured_summary, suggestion, workspace_evidence


def _metrics(**verdicts) -> dict:
    return {"methods": {m: {"verdict": {"label": label, "gain": gain}} for m, (label, gain) in verdicts.items()}}


def test_the_measured_findings_are_the_tables_and_no_generator_is_said_to_help():
    assert measured("mixup").gain == -0.024 and measured("mixup").draws == 3
    assert measured("mixup").table == "grouped_5fold_six, grouped_5fold_orientation"
    assert measured("gan").verdict == "hurts" and measured("defect_paste").gain == -0.036
    assert not [f for f in MEASURED if f.verdict == "helps"]            # what the tables say, nothing more
    assert "no method clearly beat the strongest fair baseline" in measured_summary()


def test_the_suggestion_never_sends_a_small_class_to_a_gan():
    few = suggestion({"normal": 900, "crack": 6, "dent": 40}, ["smote", "mixup", "augment", "dcgan"])
    assert "rarest defect class (crack) keeps 6" in few and "GANs tend to fail" in few
    assert "Start with augment and mixup" in few and "try dcgan" not in few       # the best measured first
    more = suggestion({"normal": 900, "crack": 60}, ["smote", "dcgan"])
    assert "dcgan -0.049" in more and "GPU" in more and "GANs tend to fail" not in more
    # the normal class is not the rarest "defect" even when it is small
    assert "(ok)" not in suggestion({"ok": 5, "crack": 50, "dent": 70}, ["smote"], normal_class="ok")
    assert suggestion({"normal": 10}, ["smote"]) == ""


def test_the_first_run_starts_with_the_best_measured_cheap_method():
    from core.advice import CHEAP, DEFAULT_METHODS, defaults_note
    gains = [measured(m).gain for m in CHEAP]
    assert gains == sorted(gains, reverse=True) and DEFAULT_METHODS == CHEAP[:1] == ("augment",)
    note = defaults_note(["smote", "augment"])
    assert note.startswith("Starts with augment (no clear difference against the strongest fair baseline on "
                           "magnetic_tile, +0.035 macro F1 over 3 seeds x 3 fold draws)"), note


def test_a_workspace_with_finished_runs_hears_what_they_said():
    evidence = workspace_evidence([_metrics(smote=("no clear difference", -0.01), mixup=("helps", 0.05)),
                                   _metrics(smote=("hurts", -0.07)), {"methods": {"x": {}}}, {}])
    assert evidence["smote"]["runs"] == 2 and evidence["smote"]["hurts"] == 1
    assert abs(evidence["smote"]["mean_gain"] - (-0.04)) < 1e-12 and "x" not in evidence
    text = suggestion({"normal": 100, "crack": 20}, ["smote", "mixup"], evidence)
    assert "In this workspace's finished runs" in text
    assert "mixup (helps in 1, mean gain +0.050); smote (no clear difference in 1, hurts in 1, mean gain -0.040)" in text
