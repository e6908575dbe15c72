"""The Ray runner's overhead: one quick sweep on magnetic_tile with the local runner and with the Ray runner on
the same machine, and what the plan's task times project for N workers (GPUs).

    .venv/bin/python benchmarks/ray_runner.py                     # 4 methods x 3 seeds, 32 px, 35 epochs
    .venv/bin/python benchmarks/ray_runner.py --write             # + benchmarks/RESULTS.md (section ray_runner)
    .venv/bin/python benchmarks/ray_runner.py --epochs 3 --seeds 0 # a quick look

Runners: `local` is what a job does by default (`core.experiment.run`: the plan in order in one process with
every core's threads); `ray` is `core.experiment.cluster.run_on_ray` on a Ray instance of this machine started
here (`ray.init(num_cpus=cores)`: one one-thread task per core, as `core.experiment.pool` does). Both runs get
a fresh run folder, and their metrics are compared (the same numbers up to the float rounding of 1 vs 2 threads).

Projection: each task's seconds on the Ray run (from its `task` events: the start of the next task in the same
worker process) and the plan's dependencies give, by list scheduling, the wall time with N workers as fast as
one of these CPU slots (plus the measured start-up). A GPU runs each task faster by a factor this CPU-only
machine cannot measure; the projection says how far the plan itself lets N devices work at once.
"""
from __future__ import annotations

import argparse
import heapq
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, write_section  # noqa: E402
from core.experiment import ExperimentConfig, plan, run, run_in_processes  # noqa: E402
from core.experiment.cluster import SYSTEM_CONFIG, run_on_ray  # noqa: E402
from core.rundir import RunDir  # noqa: E402
from core.views.runs import placements  # noqa: E402

METHODS = "smote,random_oversample,augment,mixup"


def task_seconds(run_dir: Path) -> dict[str, float]:
    """Seconds of each task: from its start to the next start in the same process (or the run's end)."""
    events = RunDir(run_dir).events()
    end = max(e["t"] for e in events)
    rows = placements(run_dir)
    out: dict[str, float] = {}
    for i, r in enumerate(rows):
        later = [q["started"] for q in rows[i + 1:] if q["pid"] == r["pid"]]
        out[r["task"]] = (min(later) if later else end) - r["started"]
    return out


def project(cfg: ExperimentConfig, seconds: dict[str, float], workers: int) -> float:
    """Wall seconds of the plan on `workers` equal workers: list scheduling, longest ready task first."""
    tasks = plan(cfg)
    done_at: dict[str, float] = {}
    free = [0.0] * workers
    heapq.heapify(free)
    remaining = list(tasks)
    while remaining:
        ready = [t for t in remaining if all(n in done_at for n in t.needs)]
        # the ready task that can start first, the longest of those
        task = min(ready, key=lambda t: (max((done_at[n] for n in t.needs), default=0.0), -seconds.get(t.id, 0.0)))
        start = max(heapq.heappop(free), max((done_at[n] for n in task.needs), default=0.0))
        done_at[task.id] = start + seconds.get(task.id, 0.0)
        heapq.heappush(free, done_at[task.id])
        remaining.remove(task)
    return max(done_at.values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "magnetic_tile"))
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=35)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "ray_runner"))
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    cores = os.cpu_count() or 1
    base = {"data": a.data, "methods": a.methods.split(","), "seeds": [int(s) for s in a.seeds.split(",")],
            "ratio": 0.1, "image_size": a.image_size, "test_per_class": 20, "quality": False, "save_images": False,
            "overrides": {"classifier": {"epochs": a.epochs}}}
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    print(f"[{time.strftime('%H:%M:%S')}] local runner ...", flush=True)
    t0, load0 = time.time(), os.getloadavg()[0]
    local = run(dict(base, num_threads=cores), out / "local")
    t_local = time.time() - t0
    print(f"[{time.strftime('%H:%M:%S')}] local {t_local:.1f} s; pool ...", flush=True)
    t0 = time.time()
    pool = run_in_processes(dict(base), out / "pool", processes=cores, threads=1)
    t_pool = time.time() - t0
    print(f"[{time.strftime('%H:%M:%S')}] pool {t_pool:.1f} s; ray runner ...", flush=True)
    import ray
    t0 = time.time()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, _system_config=SYSTEM_CONFIG)
    t_init = time.time() - t0
    t0 = time.time()
    on_ray = run_on_ray(dict(base, num_threads=1), out / "ray", address="auto")
    t_ray = time.time() - t0
    ray.shutdown()
    load1 = os.getloadavg()[0]
    print(f"[{time.strftime('%H:%M:%S')}] ray {t_ray:.1f} s (+{t_init:.1f} s to start Ray)", flush=True)
    cfg = ExperimentConfig.from_dict(dict(base))
    secs = task_seconds(out / "ray")
    first = min(r["started"] for r in placements(out / "ray"))
    startup = max(0.0, first - t0)
    work = sum(secs.values())
    def diff(a: dict, b: dict) -> list[float]:
        by = {r["name"]: r["f1_macro"] for r in b["leaderboard"]}
        return [abs(r["f1_macro"] - by[r["name"]]) for r in a["leaderboard"]]
    diffs, diffs_pool = diff(on_ray, local), diff(on_ray, pool)
    n_tasks = len(plan(cfg))
    lines = [
        "## The Ray runner against the local runner (`benchmarks/ray_runner.py`, issue 23)", "",
        f"Machine: {machine()}; 1-minute load average {load0:.1f} before, {load1:.1f} after. Measured "
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC.",
        f"Sweep: magnetic_tile, ratio 0.1, {a.image_size} px, methods {', '.join(base['methods'])}, seeds "
        f"{a.seeds}, the three baselines, small CNN {a.epochs} epochs, no quality step: {n_tasks} tasks.", "",
        "| runner | how | wall time | largest macro F1 difference of the Ray run's models |",
        "|---|---|---|---|",
        f"| local | `core.experiment.run`, one process, {cores} torch threads (a job's default) | **{t_local:.1f} s** | "
        f"{max(diffs):.4f} ({len(diffs)} models; 2 threads round differently from 1) |",
        f"| pool | `run_in_processes`, {cores} processes of one thread (benchmarks/seed_protocol.py) | "
        f"**{t_pool:.1f} s** | {max(diffs_pool):.4f} |",
        f"| ray | `run_on_ray`, Ray on this machine ({cores} CPUs), one-thread tasks | **{t_ray:.1f} s** "
        f"(+ {t_init:.1f} s `ray.init`) | - |", "",
        f"Ray / local: **{t_ray / t_local:.2f}x**; Ray / pool (the same one-thread parallelism): **{t_ray / t_pool:.2f}x** "
        f"({t_ray - t_pool:+.1f} s over {n_tasks} tasks: the pool waits for every baseline before any method and "
        "starts a fresh process per chain; Ray starts each task once its inputs are there, in reused workers). From "
        f"the call to the first task starting: {startup:.1f} s. The tasks' own seconds add up to {work:.0f} s: "
        f"{work / max(t_ray, 1e-9):.2f} of {cores} workers busy on average, so Ray's scheduling and start-up left "
        f"{100 * (1 - work / max(t_ray * cores, 1e-9)):.0f}% of the cores idle.", "",
        "Projection from these task times (list scheduling of the plan's dependency graph; workers as fast as one "
        "CPU slot here; a GPU makes each task faster by a factor not measured on this machine):", "",
        "| workers | projected wall time | speed-up over 1 |", "|---|---|---|"]
    one = project(cfg, secs, 1)
    for n in (1, 2, 4, 8, 16, 32):
        t = project(cfg, secs, n) + startup
        lines.append(f"| {n} | {t:.0f} s | {(one + startup) / t:.1f}x |")
    width = sum(1 for t in plan(cfg) if t.kind in ("train", "fit") and t.needs == ("prepare",))
    lines += ["", f"After prepare, {width} tasks are ready at once (every baseline training and every fit of every "
              f"seed), so up to {width} GPUs are busy in the first wave; beyond that the longest chain (a fit then "
              "its training) bounds the wall time."]
    text = "\n".join(lines)
    print(text)
    if a.write:
        write_section("ray_runner", text)


if __name__ == "__main__":
    main()
