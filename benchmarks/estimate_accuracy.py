"""Does the Synthesize estimate hold? Estimated against actual minutes for runs of different sizes and methods.

    .venv/bin/python benchmarks/estimate_accuracy.py             # every case, in order (~30 min on 2 busy cores)
    .venv/bin/python benchmarks/estimate_accuracy.py --cases sample_smote_1s,mt_smote_1s --no-write

Each case goes the app's way: `core.jobs.preflight` gives the estimate (`core.estimate`, calibrated from the
finished runs of this benchmark's own home, as a workspace would be: the first case has only the priors), then
the job is submitted to the real background worker and timed from its start to its results (`Job.elapsed`,
what the Jobs page shows as "finished in"). The load average at launch and the torch threads the job used are
in the table, and the Jobs page's time left (core.views.progress) read every 3 s while each job ran. Writes the section
`estimate_progress` of benchmarks/RESULTS.md with the machine it ran on (`estimate` holds issue 26's passes).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, write_section  # noqa: E402

MT = ROOT.parent / "shared" / "datasets" / "magnetic_tile"
SAMPLE = "sample"          # the built-in sample at its default counts, written into the home's data root

# name -> (data, config); the quick preset throughout, a few classifier epochs or generator steps fewer where
# the case is about scaling rather than the product's defaults
CASES = {
    "sample_smote_1s": (SAMPLE, {"methods": ["smote"], "seeds": [0], "ratio": None}),
    "mt_smote_1s_32px": ("mt", {"methods": ["smote"], "seeds": [0], "ratio": 0.1, "image_size": 32}),
    "mt_dcgan_1s_32px": ("mt", {"methods": ["dcgan"], "seeds": [0], "ratio": 0.1, "image_size": 32,
                                "overrides": {"dcgan": {"steps": 100}}}),
    "mt_smote_mixup_3s_32px": ("mt", {"methods": ["smote", "mixup"], "seeds": [0, 1, 2], "ratio": 0.1,
                                      "image_size": 32, "overrides": {"classifier": {"epochs": 10}}}),
    "sample_augment_2s_32px": (SAMPLE, {"methods": ["augment"], "seeds": [0, 1], "ratio": None, "image_size": 32}),
    "sample_smote_3s": (SAMPLE, {"methods": ["smote"], "seeds": [0, 1, 2], "ratio": None}),
    "sample_smote_1s_32px": (SAMPLE, {"methods": ["smote"], "seeds": [0], "ratio": None, "image_size": 32}),
    "sample_random_oversample_1s_32px": (SAMPLE, {"methods": ["random_oversample"], "seeds": [0], "ratio": None,
                                                  "image_size": 32}),
    "sample_ddpm_translate_1s_32px": (SAMPLE, {"methods": ["ddpm_translate"], "seeds": [0], "ratio": None,
                                               "image_size": 32,
                                               "overrides": {"ddpm_translate": {"steps": 60, "sample_every": 20}}}),
}
LEFT_AT = (0.25, 0.5, 0.75)   # moments of a run (share of its actual time) at which the Jobs page's time left is read


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--home", default=str(ROOT / "benchmarks" / "out" / "estimate_home"))
    ap.add_argument("--keep", action="store_true", help="keep the home's earlier runs (their calibration)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--rows", default="", help="a rows.json of earlier cases to put in the table first (a run "
                                               "continued with --keep in another process)")
    args = ap.parse_args()

    home = Path(args.home)
    if home.exists() and not args.keep:
        shutil.rmtree(home)
    roots = home.parent / "estimate_data_roots"     # outside the home: the app never reads data from it
    roots.mkdir(parents=True, exist_ok=True)
    os.environ.update(DEFECTAUG_HOME=str(home), DEFECTAUG_DATA_ROOTS=os.pathsep.join([str(roots), str(MT.parent)]),
                      DEFECTAUG_WORKER_IDLE="60", DEFECTAUG_MAX_PARALLEL="1")
    os.environ.pop("DEFECTAUG_SHARED_WORKSPACE", None)

    from core import estimate as est_mod
    from core.data import protocol_counts
    from core.views import runs
    from core.jobs import FINISHED, JobStore, preflight, quick_counts, start_worker, wait_for
    from core.rundir import RunDir
    from core.sample_data import write_sample_dataset
    from core.workspace import Workspace

    sample = roots / "defectaug_sample"
    if not sample.exists():
        write_sample_dataset(sample)
    ws = Workspace.create()
    store = JobStore(ws)
    rows = json.loads(Path(args.rows).read_text()) if args.rows else []
    for name in [c for c in args.cases.split(",") if c]:
        data, extra = CASES[name]
        path = sample if data == SAMPLE else MT
        config = {"data": str(path), "preset": "quick", **extra}
        found = quick_counts(str(path))
        counts = protocol_counts(found, 20, config.get("ratio"), None).train
        est_mod._CACHE.clear()                                    # this moment's calibration
        load = est_mod.current_load()
        checked = preflight(config, ws, counts=counts)
        e = checked.estimate
        job_id = store.submit(checked)
        start_worker(store)
        trace = []                          # (seconds since the job started, fraction, time left) as the page shows
        while True:
            job = store.get(job_id)
            if job.status in FINISHED:
                break
            if job.status == "running" and job.started:
                p = runs.progress(job.run_dir, active=True)
                trace.append((time.time() - job.started, p.fraction, p.remaining))
            time.sleep(3.0)
        job = wait_for(store, job_id, timeout=60, poll=1.0)
        cfg = RunDir(job.run_dir).config()
        row = {"case": name, "status": job.status, "estimate_s": e["seconds"], "low_s": e["seconds_low"],
               "high_s": e["seconds_high"], "actual_s": round(job.elapsed or 0, 1), "runs": e["calibrated_runs"],
               "load": round(load or 0, 1), "slowdown": e.get("slowdown"),
               "threads": (cfg.get("environment") or {}).get("threads"), "measured": time.strftime("%H:%M")}
        row["ratio"] = round(row["actual_s"] / row["estimate_s"], 2) if row["estimate_s"] else None
        row["inside"] = row["low_s"] <= row["actual_s"] <= row["high_s"]
        row["left"] = _left_at(trace, row["actual_s"])
        row["fraction_rises"] = all(b[1] >= a[1] for a, b in zip(trace, trace[1:]))
        rows.append(row)
        print(json.dumps(row), flush=True)
        (home / "rows.json").write_text(json.dumps(rows, indent=1))
    if not args.no_write:
        write_section("estimate_progress", _table(rows))


def _left_at(trace: list[tuple], actual: float) -> list[tuple]:
    """(share of the run, time left shown, time actually left) at `LEFT_AT` of the run's actual time."""
    out = []
    for share in LEFT_AT:
        seen = [r for r in trace if r[0] <= share * actual and r[2] is not None]
        if seen:
            t, _, left = seen[-1]
            out.append((share, round(left, 1), round(actual - t, 1)))
    return out


def _load_note(rows: list[dict]) -> str:
    """Idle or shared, from the 1-minute load average at each launch (the table's column)."""
    loads = [r["load"] for r in rows if r.get("load") is not None]
    cores = os.cpu_count() or 1
    if loads and max(loads) <= cores + 0.5:
        return (f"**Idle**: nothing but this benchmark ran (load average {min(loads):.1f}-{max(loads):.1f} at the "
                f"launches on {cores} cores).")
    return (f"**Shared**: other work ran on the same {cores} cores (load average at the launches "
            f"{min(loads or [0]):.1f}-{max(loads or [0]):.1f}, in the table), so these are a contended machine's "
            "times, not an idle one's.")


def _table(rows: list[dict]) -> str:
    m = lambda s: f"{s / 60:.2f}"   # noqa: E731
    lines = ["## Time estimates and the Jobs page's time left against actual run times "
             "(`benchmarks/estimate_accuracy.py`, issues 26 and 36)", "",
             f"Machine: {machine()}; measured {time.strftime('%Y-%m-%d %H:%M')} UTC. " + _load_note(rows), "",
             "Each case was estimated by the Synthesize page's model (`core.jobs.preflight` -> `core.estimate`) "
             "just before it was launched, calibrated on the cases before it (the first on the priors only), then "
             "run by the background worker; actual = the job's start to its results (the Jobs page's "
             "\"finished in\"). quick preset; magnetic_tile at ratio 0.1.", "",
             "| case | estimate (min) | shown range (min) | actual (min) | actual / estimate | inside | "
             "runs calibrated on | load at launch | threads | status |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {m(r['estimate_s'])} | {m(r['low_s'])}-{m(r['high_s'])} | {m(r['actual_s'])} | "
                     f"{r['ratio']} | {'yes' if r['inside'] else '**no**'} | {r['runs']} | {r['load']} | "
                     f"{r['threads']} | {r['status']} |")
    lines += ["", "The Jobs page's time left (`core.views.progress`, read every 3 s while the job ran) against the time "
                  "that was actually left, at a quarter, half and three quarters of each run:", "",
              "| case | at 25%: shown / actual (s) | at 50% | at 75% | progress only rose |", "|---|---|---|---|---|"]
    for r in rows:
        cells = {share: f"{shown:.0f} / {left:.0f}" for share, shown, left in r.get("left") or []}
        lines.append(f"| {r['case']} | " + " | ".join(cells.get(s, "") for s in LEFT_AT)
                     + f" | {'yes' if r.get('fraction_rises') else 'no'} |")
    ratios = [r["ratio"] for r in rows if r["ratio"]]
    if ratios:
        lines += ["", f"Median actual / estimate: **{statistics.median(ratios):.2f}** over {len(ratios)} runs; "
                      f"{sum(r['inside'] for r in rows)} of {len(rows)} inside the shown range."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
