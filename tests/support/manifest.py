"""Reading an exported zip's manifest.csv in tests."""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from core.files import csv_value


def manifest_counts(zip_path: str | Path) -> dict[str, dict[str, int]]:
    """{class: {origin: count}} from an exported zip's manifest."""
    with zipfile.ZipFile(zip_path) as zf:
        reader = csv.DictReader(io.StringIO(zf.read("manifest.csv").decode("utf-8")))
        out: dict[str, dict[str, int]] = {}
        for r in reader:
            cls = csv_value(r["class"])           # the quote csv_row put before a formula-like name
            out.setdefault(cls, {}).setdefault(r["origin"], 0)
            out[cls][r["origin"]] += 1
    return out
