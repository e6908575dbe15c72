"""The verdict in plain sentences, whatever the run found for each class."""
from __future__ import annotations

import itertools
import re

import pytest

from core.metrics.verdict import verdict_text


def _v(label: str, per_class: dict[str, str], family: int = 3, folds: int = 1) -> dict:
    return {"against": "class_weighted", "label": label, "gain": {"helps": 0.05, "hurts": -0.05}.get(label, 0.01),
            "ci": [0.01, 0.09] if label == "helps" else [-0.09, -0.01] if label == "hurts" else [-0.03, 0.05],
            "level": 0.9833, "family": family, "mdg": 0.04, "folds": folds, "n_seeds": 3,
            "per_class": {c: {"label": lab, "gain": 0.2 if lab == "helps" else -0.2 if lab == "hurts" else 0.01}
                          for c, lab in per_class.items()}}


SEAMS = re.compile(r"\.;|;\.|,\.|\.\.|  |\(\)|; ;|\.,")


@pytest.mark.parametrize("label", ["helps", "hurts", "no clear difference"])
@pytest.mark.parametrize("classes", list(itertools.product(["helps", "hurts", "no clear difference"], repeat=3)))
def test_every_combination_of_classes_reads_as_sentences(label, classes):
    text = verdict_text("smote", _v(label, dict(zip(["crack", "dent", "spot"], classes))), 0.81, 0.80, 20)
    assert not SEAMS.search(text), text
    assert text.endswith(".") and f"Verdict: {label}" in text
    sentences = [s for s in re.split(r"(?<=\.) (?=[A-Z])", text)]
    assert all(s[0].isupper() or s.startswith("smote") for s in sentences), sentences
    up = [c for c, lab in zip(["crack", "dent", "spot"], classes) if lab == "helps"]
    down = [c for c, lab in zip(["crack", "dent", "spot"], classes) if lab == "hurts"]
    for words, named in (("rose clearly for", up), ("fell clearly for", down)):
        said = next((s for s in sentences if words in s), "")
        assert all(c in said for c in named), (named, text)       # each class in the sentence that says so
        assert bool(said) == bool(named), text
    if not up and not down:
        assert "No defect class's recall changed clearly." in text
    if label != "helps":     # why the run could not see more: its test images per class and seeds
        assert "up to 20 test images per class and 3 seeds" in text, text


def test_no_clear_difference_says_what_this_run_could_see_and_how_to_see_more():
    text = verdict_text("mixup", _v("no clear difference", {"crack": "no clear difference"}), 0.82, 0.81, 20)
    assert "no gain larger than 0.040 either way" in text and "20 test images per class" in text
    assert "more seeds, folds or test images would shrink it" in text
    assert "The level accounts for the 3 methods compared (Holm)." in text
    alone = verdict_text("mixup", _v("helps", {}, family=1, folds=5), 0.82, 0.81, 20)
    assert "Holm" not in alone and "5 folds x 3 seeds" in alone and "98.3% interval" in alone
