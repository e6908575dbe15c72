"""Compare the metrics.json of two runs value by value, timings aside: the check that a change of structure
changed no result (benchmarks/RESULTS.md, sections house_refactor and house_issue35).

    python benchmarks/same_metrics.py RUN_BEFORE RUN_AFTER [RUN_BEFORE2 RUN_AFTER2 ...]

Prints, per pair, how many values were compared, which differ (path, before, after) and which exist on one
side only; exits 1 when any differ. Timing and memory fields (seconds*, *_seconds, peak_rss_mb, timings) and
the `environment` of the run are not results and are skipped. Numbers are compared exactly (to the last digit).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

SKIP = ("seconds", "peak_rss_mb", "timings", "environment", "started", "seconds_per_step")


def _skipped(key: str) -> bool:
    return any(key == s or key.startswith(s) or key.endswith("_" + s) for s in SKIP)


def flatten(value, path: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not _skipped(str(k)):
                out.update(flatten(v, f"{path}/{k}"))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{path}[{i}]"))
        return out
    return {path: value}


def compare(before: Path, after: Path) -> tuple[int, list[tuple[str, object, object]], list[str]]:
    a = flatten(json.loads((before / "metrics.json").read_text(encoding="utf-8")))
    b = flatten(json.loads((after / "metrics.json").read_text(encoding="utf-8")))
    differ = [(k, a[k], b[k]) for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    one_side = sorted(set(a) ^ set(b))
    return len(set(a) & set(b)), differ, one_side


def main(argv: list[str]) -> int:
    if len(argv) < 2 or len(argv) % 2:
        print(__doc__)
        return 2
    bad = 0
    for before, after in zip(argv[::2], argv[1::2]):
        n, differ, one_side = compare(Path(before), Path(after))
        print(f"{before} vs {after}: {n} values compared, {len(differ)} differ, {len(one_side)} on one side only")
        for k, x, y in differ[:20]:
            print(f"  {k}: {x!r} -> {y!r}")
        for k in one_side[:20]:
            print(f"  only one side: {k}")
        bad += bool(differ or one_side)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
