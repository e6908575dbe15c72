"""Class folders and file names a spreadsheet would run as formulas (= + - @ TAB CR first, the OWASP rule):
every CSV of a run (predictions, provenance, quality) and the export's manifest.csv hold them as text
(a leading '), and the app reads them back as the names they are."""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest

from core.rundir import RunDir
from tests.conftest import write_dataset

FORMULA = ("=", "+", "-", "@", "\t", "\r")
CLASSES = {"normal": 14, '=HYPERLINK("evil.example","x")': 7, "@SUM(A1)": 7}


@pytest.fixture(scope="module")
def formula_run(tmp_path_factory) -> Path:
    from core.experiment import run
    tmp = tmp_path_factory.mktemp("formula")
    data = write_dataset(tmp, CLASSES, size=16)
    (data / "normal" / "normal_0.png").rename(data / "normal" / "-1+1.png")
    run(dict(methods=["smote"], seeds=[0], ratio=None, image_size=16, test_per_class=3, data=str(data),
             overrides={"classifier": {"epochs": 1, "width": 4}}, device="cpu", num_threads=1), tmp / "run")
    return tmp / "run"


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


def test_every_csv_of_the_run_holds_formulas_as_text_and_reads_back(formula_run):
    tables = sorted(formula_run.rglob("*.csv"))
    assert {p.parent.name for p in tables} >= {"predictions", "smote"}
    for path in tables:
        bad = [c for c in _cells(path.read_text(encoding="utf-8")) if c.startswith(FORMULA)]
        assert bad == [], (path.name, bad[:3])
    rd = RunDir(formula_run)
    names = set(CLASSES)
    rows = rd.predictions(rd.prediction_models()[0])
    assert {r["true"] for r in rows} == names and {r["pred"] for r in rows} <= names
    assert {r["file"] for r in rows} == set(rd.load_split("test").sources)    # '=HYPERLINK(...)/...' back as is
    items = rd.gallery("smote")
    assert {it.cls for it in items} == names - {"normal"}
    parents = {p for it in items for p in it.parents}
    assert parents and set(rd.images_by_source(sorted(parents))) == parents    # the provenance finds its images
    assert all(it.path.exists() for it in items)


def test_the_exported_csvs_hold_formulas_as_text(formula_run, tmp_path):
    from core.views.export import export_zip
    out = export_zip(formula_run, "smote", tmp_path / "balanced.zip")
    with zipfile.ZipFile(out) as zf:
        tables = [n for n in zf.namelist() if n.endswith(".csv")]
        assert "manifest.csv" in tables
        for name in tables:
            cells = _cells(zf.read(name).decode("utf-8"))
            assert [c for c in cells if c.startswith(FORMULA)] == [], name


def test_the_export_reads_its_manifest_back_as_the_class_names(formula_run, tmp_path):
    from core.views.export import export_zip
    from tests.support.manifest import manifest_counts
    out = export_zip(formula_run, "smote", tmp_path / "balanced.zip")
    assert set(manifest_counts(out)) == set(CLASSES)
