"""How long a run will take, from what this machine measured: one model for the Synthesize estimate and the
Jobs page's time remaining.

Each task of the plan (`core.experiment.plan`) costs `units x rate x slowdown`:

    units     what the task does, from the config and the class counts: images a classifier passes over
              (steps x batch, plus the test images each epoch), a generator's updates x batch x models, the
              synthetic and real images the quality measures read, the images loaded; x (image size / 64)^2
    rate      seconds per unit, per kind of task (prepare, train, quality, aggregate, startup) and per method
              for fit; a prior measured on this project's 2-core machine, pulled towards what the finished runs
              of this machine took (their stage times in events.jsonl; up to `RUNS` of the newest)
    slowdown  other work on the machine: max(1, load / cores), the 1-minute load average (each stage event
              records the load it started at, so the rates are per unloaded machine)

The range comes from how far the finished runs' actual times fell from this model when only the load at their
start is known, as at launch (their 10th and 90th percentile ratio, never narrower than `MIN_BAND`). On a busy
machine (load at least twice the cores) it also allows the load to halve or grow by half during the run, which
is what a shared machine does (`LOAD_MOVES`). Wider while a method of the run has never been measured here.

    rates = machine_rates()                       # calibrated from this machine's finished runs (cached 60 s)
    est = estimate(config, train_counts, rates=rates)     # Estimate(seconds, low, high, ...)
    left = remaining(run_dir)                     # seconds left of a running run, or None while unknown
"""
from __future__ import annotations

import math
import os
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from .rundir import RunDir

RUNS = 30                      # newest finished runs read for the calibration
MIN_BAND = (0.7, 1.5)          # the narrowest range shown, as ratios of the estimate (a shared machine's noise)
UNCALIBRATED_BAND = (0.6, 1.8)  # no finished run on this machine yet
LOAD_MOVES = (0.75, 1.15)      # with the load halving / growing by half: the range on a busy machine
PRIOR_WEIGHT = 1.0             # the prior counts as this many measured runs
EVAL_WEIGHT = 0.35             # a test image scored each epoch costs this much of a training image
RATE_BOUND = 8.0               # a calibrated rate stays within this factor of its prior
ONE_THREAD = 1.6               # one torch thread against two on an idle 2-core machine
SIDE_BY_SIDE = 1.47            # a one-thread training beside another on a 2-core machine: 15.2 s against 10.4 s
                               # alone (benchmarks/RESULTS.md, first_run_six)

# Seconds per unit on an unloaded machine: this project's 2-core machines (benchmarks/RESULTS.md, "estimate").
# The classifier's from a 1-seed smote run on the idle machine; the GANs' from RESULTS.md's quick-preset minutes;
# loading, SMOTE, quality, metrics and start-up from a first pass of estimate_accuracy.py's first two cases.
# The linear baseline's, per training image at 64 px: its lbfgs fit on magnetic_tile (1,226 images, 32 and 64 px)
# took 29 and 108 s at a load of 10 on the 2 cores, about 5 and 20 s unloaded.
# The classifier's rate differs between this project's machines: 1.5e-4 on the Intel Xeon it was first measured
# on, 3.2e-4 on the AMD EPYC of 2026-12-07 (300 steps of the small CNN at 64 px on one thread in 10.4 s, against
# 7.7 s on two; the sample's first run, 21 trainings, 430 s where this prior said 177): an unmeasured machine gets
# their geometric mean, so either lies inside UNCALIBRATED_BAND; its first finished run calibrates it.
PRIOR = {"startup": 1.5, "prepare": 2.5e-4, "train": 2.2e-4, "quality": 2.5e-3, "aggregate": 0.03, "linear": 1.6e-2}
FIT_PRIOR_BY_FAMILY = {"classic": 5e-5, "interpolation": 6e-4, "mixing": 1e-4, "gan": 3.0e-3,
                       "translation": 8.5e-3, "diffusion": 9e-3, "transplant": 5e-3}
# cmo and defect_paste: fit + sample of magnetic_tile at 32 px (5,500 units) took 12.6 s and 155 s at a load of ~20
# on 2 cores (issue 34), taken as ~5x faster on an idle machine
FIT_PRIOR = {"gan": 4.6e-4, "smote": 6e-4, "borderline_smote": 1.2e-3, "adasyn": 1.2e-3, "cgan": 4.0e-3,
             "acgan": 3.9e-3, "wgan_gp": 2.6e-3, "dcgan": 3.0e-3, "cmo": 4e-4, "defect_paste": 5e-3}


@dataclass
class Rates:
    """Seconds per unit for each key (`train`, `fit:smote`, ...), and the range the calibration supports."""
    per_unit: dict[str, float] = field(default_factory=dict)
    measured: dict[str, int] = field(default_factory=dict)     # key -> finished runs that measured it
    band: tuple[float, float] = UNCALIBRATED_BAND
    runs: int = 0

    def rate(self, key: str, family: str | None = None) -> float:
        if key in self.per_unit:
            return self.per_unit[key]
        if key.startswith("fit:"):
            name = key[4:]
            return FIT_PRIOR.get(name) or FIT_PRIOR_BY_FAMILY.get(family or "", 3e-3)
        return PRIOR[key]


@dataclass
class Estimate:
    seconds: float                 # the most likely duration, on the machine as loaded now
    low: float
    high: float
    tasks: dict[str, float]        # task id -> seconds
    slowdown: float                # the load factor applied
    runs: int                      # finished runs the rates were calibrated from
    uncalibrated: list[str]        # methods never measured on this machine
    processes: int = 1             # trainings side by side (runtime.local_processes)

    def text(self) -> str:
        return f"{fmt(self.seconds)} ({fmt(self.low)} to {fmt(self.high)})"


def fmt(seconds: float | None) -> str:
    """'42 s', '3 min 05 s', '1 h 02 min'."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


# ---------------------------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------------------------
def current_load() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


def slowdown(load: float | None, threads: int = 1, cores: int | None = None) -> float:
    """How much slower than one unloaded job on every core a task runs, from the 1-minute load average (the
    job's own threads included) and the torch threads it uses. On one thread a job gets its share of a busy
    machine, less than the load says (much of the load is other jobs' threads waiting), and is `ONE_THREAD`
    slower on an idle one; a team of threads waits at each operation for the one descheduled, so it slows about
    with the square of the load per core (benchmarks/RESULTS.md, "estimate")."""
    cores = cores or os.cpu_count() or 1
    busy = 1.0 if load is None else max(1.0, float(load) / cores)
    if threads > 1:
        return busy ** 2
    return (ONE_THREAD if cores > 1 else 1.0) * busy ** 0.8


def planned_threads(cfg, load: float | None) -> int:
    """The threads each training of the job runs on: the config's fixed count, whatever the load."""
    from .runtime import training_threads
    return training_threads(cfg.num_threads)


# ---------------------------------------------------------------------------------------------
# The work of each task
# ---------------------------------------------------------------------------------------------
def task_units(cfg, train_counts: dict[str, int], needed: dict[str, int] | None = None,
               n_test: int | None = None, n_images: int | None = None) -> list[tuple[str, str, float]]:
    """(task id, rate key, units) of every task of the run's plan, plus its start-up."""
    from .classifier import STEP_COST, steps_for
    from .data import balance_targets
    from .experiment import plan
    from .methods import get_method

    needed = balance_targets(train_counts, cfg.target_ratio) if needed is None else needed
    cp = cfg.classifier_params()
    px = (cfg.image_size / 64) ** 2
    # the small CNN scales with its width; the torchvision archs by their measured cost (classifier.STEP_COST)
    arch = (cp.width / 16) ** 2 if cp.arch == "small_cnn" else float(STEP_COST.get(cp.arch, 40))
    n_train = sum(train_counts.values())
    n_bal = n_train + sum(needed.values())
    if n_test is None:
        t = float(cfg.test_per_class)
        n_test = int(sum(min(t if t >= 1 else t * n, n // 2) for n in train_counts.values())) if t else 0
    n_images = n_images or (n_train + n_test)
    if cfg.folds > 1:   # each fold trains on (K-1)/K of the images and tests on 1/K
        n_test = max(1, n_images // cfg.folds)
    out = [("startup", "startup", 1.0)]
    for task in plan(cfg):
        if task.kind == "prepare":
            out.append((task.id, "prepare", float(n_images)))
        elif task.baseline == "linear":     # fitted once per fold; the other seeds reuse it
            out.append((task.id, "linear", n_train * px if task.seed == cfg.seeds[0] else 0.0))
        elif task.kind == "train":
            on = n_train if task.baseline else n_bal
            steps = steps_for(n_train if task.baseline == "paper" else n_bal, cp)
            images = steps * min(cp.batch_size, on) + cp.epochs * n_test * EVAL_WEIGHT
            out.append((task.id, "train", images * px * arch))
        elif task.kind == "fit":
            out.append((task.id, f"fit:{task.name}", _fit_units(cfg, get_method(task.name), train_counts, needed) * px))
        elif task.kind == "quality":
            out.append((task.id, "quality", float(sum(needed.values()) + n_train) * px))
        elif task.kind == "aggregate":
            out.append((task.id, "aggregate", float(len(cfg.methods) * (1 + int(cfg.quality_gate)) *
                                                    len(cfg.seeds) * cfg.folds) ** 0.5 + 1))
    return out


def _fit_units(cfg, spec, train_counts: dict[str, int], needed: dict[str, int]) -> float:
    """A fit's work at 64 px (the caller scales it by the image size): its generator updates x batch x models,
    or per image for the methods that only copy, interpolate or mix. A diffusion model is one model for every
    class at its own `resolution`, and it also denoises every synthetic image `sample_steps` times."""
    p = cfg.method_params(spec.name)
    steps, epochs = int(getattr(p, "steps", 0) or 0), int(getattr(p, "epochs", 0) or 0)
    if not (steps or epochs):              # copying, interpolating, mixing: per synthetic image
        return float(sum(needed.values()) + sum(train_counts.values()))
    batch = int(getattr(p, "batch_size", 32) or 32)
    models, steps = fit_models(spec, p, needed), fit_steps_per_model(spec, p, train_counts, needed)
    updates = steps * batch * (int(getattr(p, "d_steps", 1) or 1) + 1) * models
    units = float(updates + int(getattr(p, "pretrain_steps", 0) or 0) * batch)
    if getattr(spec, "family", "") == "diffusion":
        own = int(getattr(p, "resolution", 0) or 0)
        scale = (own / cfg.image_size) ** 2 if own else 1.0     # trains and samples at its own size
        units = (units + _sampling_units(p, needed)) * scale
    return units


def _sampling_units(p, needed: dict[str, int]) -> float:
    """A diffusion model's sampling: every synthetic image denoised `sample_steps` times (at 64 px units)."""
    return sum(needed.values()) * int(getattr(p, "sample_steps", 25) or 25) * 1.1


def _fit_tasks(cfg):
    """(task, spec, params) of every fit task of the plan whose method is registered (an unregistered method
    fails in its task, not here)."""
    from .experiment import plan
    from .methods import get_method
    for task in plan(cfg):
        if task.kind != "fit":
            continue
        try:
            spec = get_method(task.name)
        except Exception:   # noqa: BLE001
            continue
        yield task, spec, cfg.method_params(task.name)


def sampling_shares(cfg, train_counts: dict[str, int], needed: dict[str, int]) -> dict[str, float]:
    """The share of each generative fit task that drawing its synthetic images takes (after its training steps),
    by the same model: what the Jobs page weighs a fit's sampling by. A diffusion model's sampling is most of it."""
    out = {}
    for task, spec, p in _fit_tasks(cfg):
        if getattr(spec, "family", "") != "diffusion":
            continue
        total = _fit_units(cfg, spec, train_counts, needed)
        own = int(getattr(p, "resolution", 0) or 0)
        scale = (own / cfg.image_size) ** 2 if own else 1.0
        if total > 0:
            out[task.id] = round(min(0.95, _sampling_units(p, needed) * scale / total), 3)
    return out


def fit_models(spec, p, needed: dict[str, int]) -> int:
    """Generative models a fit trains: one for all classes (conditional GANs, diffusion), else one per class
    that needs images."""
    if getattr(spec, "conditional", False) or getattr(spec, "family", "") == "diffusion":
        return 1
    return max(1, sum(1 for n in needed.values() if n > 0))


def fit_steps_per_model(spec, p, train_counts: dict[str, int], needed: dict[str, int]) -> int:
    steps, epochs = int(getattr(p, "steps", 0) or 0), int(getattr(p, "epochs", 0) or 0)
    if steps or not epochs:
        return steps
    batch = int(getattr(p, "batch_size", 32) or 32)
    per = [train_counts[c] for c, n in needed.items() if n > 0] or [1]
    return epochs * math.ceil(statistics.mean(per) / batch)


def planned_steps(cfg, train_counts: dict[str, int], needed: dict[str, int]) -> dict[str, int]:
    """The training steps each fit task of the plan reports in its progress events, all its models together
    (pre-training included): what the Jobs page divides a fit's step counts by. Tasks without steps are absent."""
    out = {}
    for task, spec, p in _fit_tasks(cfg):
        steps = fit_steps_per_model(spec, p, train_counts, needed) * fit_models(spec, p, needed)
        steps += int(getattr(p, "pretrain_steps", 0) or 0)
        if steps:
            out[task.id] = steps
    return out


def _family(key: str) -> str | None:
    if not key.startswith("fit:"):
        return None
    from .methods import get_method
    try:
        return get_method(key[4:]).family
    except Exception:   # noqa: BLE001  a method no longer registered: the generic prior
        return None


# ---------------------------------------------------------------------------------------------
# The estimate
# ---------------------------------------------------------------------------------------------
def estimate(config, train_counts: dict[str, int], needed: dict[str, int] | None = None,
             n_test: int | None = None, n_images: int | None = None, rates: Rates | None = None,
             load: float | None = None, processes: int | None = None) -> Estimate:
    """The run's duration from the start of its job to its metrics, as a most likely value and a range.
    `load`: the machine's load average now (default: read it); the job's own threads are added to it.
    `processes`: how many of its trainings run side by side (default: as a job of the app would run them,
    `runtime.local_processes`)."""
    from .experiment import ExperimentConfig
    from .runtime import pick_device
    cfg = ExperimentConfig.from_dict(dict(config) if isinstance(config, dict) else config)
    rates = rates or Rates()
    gpu = 0.1 if pick_device(cfg.device).type != "cpu" else 1.0   # the priors are a CPU's; a GPU ~10x faster
    load = current_load() if load is None else load
    threads = planned_threads(cfg, load)
    slow = slowdown(None if load is None else load + threads, threads)
    tasks, uncalibrated, unmeasured = {}, [], 0.0
    for tid, key, units in task_units(cfg, train_counts, needed, n_test, n_images):
        seconds = units * rates.rate(key, _family(key)) * slow * (1.0 if key == "startup" else gpu)
        tasks[tid] = seconds
        if key.startswith("fit:") and not rates.measured.get(key):
            unmeasured += seconds
            if key[4:] not in uncalibrated:
                uncalibrated.append(key[4:])
    if processes is None:   # as a job would run it: a long run's trainings side by side on a CPU
        from .runtime import local_processes
        processes = local_processes(cfg.device, cfg.num_threads, sum(tasks.values()) / max(slow, 1e-9))
    processes = max(1, int(processes))
    if processes > 1:   # each task slower beside the others, the run shorter by the processes sharing it
        tasks = {tid: sec * (1.0 if tid == "startup" else SIDE_BY_SIDE) for tid, sec in tasks.items()}
        total = tasks.get("startup", 0.0) + sum(sec for tid, sec in tasks.items() if tid != "startup") / processes
    else:
        total = sum(tasks.values())
    lo, hi = rates.band
    if total and unmeasured / total > 0.3:          # mostly a method this machine has not timed yet
        lo, hi = min(lo, UNCALIBRATED_BAND[0]), max(hi, UNCALIBRATED_BAND[1])
    cores = os.cpu_count() or 1
    if load is not None and (load + threads) / cores >= 2:   # a busy shared machine: its load may halve, or
        power = 2 if threads > 1 else 0.8                     # grow by half, while the run goes on (here it
        lo = min(lo, LOAD_MOVES[0] * 0.5 ** power)            # fell from 11 to 5 within minutes)
        hi = max(hi, LOAD_MOVES[1] * 1.5 ** power)
    return Estimate(seconds=total, low=total * lo, high=total * hi, tasks=tasks, slowdown=slow,
                    runs=rates.runs, uncalibrated=uncalibrated, processes=processes)


def method_seconds(config, train_counts: dict[str, int], names: list[str], rates: Rates | None = None,
                   load: float | None = None) -> dict[str, float]:
    """What each method would add to a run of `config` on this machine (its fits, quality measures and
    trainings over the config's seeds): for the picker's "over an hour here" mark. A method the config cannot
    take (it needs a normal class, say) is left out."""
    def own(est: Estimate, name: str) -> float:
        mine = re.compile(rf"{re.escape(name)}(_f\d+)?_s\d+")      # smote_s0, smote_f2_s0; never smote_x_s0
        mine_total = sum(sec for tid, sec in est.tasks.items() if mine.fullmatch(tid.split(":", 1)[-1]))
        return mine_total / max(1, est.processes)            # side by side, its tasks share the cores

    try:                   # one estimate of them all (its tasks are per method), else one by one
        est = estimate(dict(config, methods=list(names)), train_counts, rates=rates, load=load)
        return {name: own(est, name) for name in names}
    except Exception:   # noqa: BLE001
        pass
    out = {}
    for name in names:
        try:
            out[name] = own(estimate(dict(config, methods=[name]), train_counts, rates=rates, load=load), name)
        except Exception:   # noqa: BLE001  the method's own problem shows when it is picked
            continue
    return out


SLOW = 3600.0     # seconds: a method whose share of a run is over this is "over an hour here" in the picker


def slow_methods(data: str, counts: dict[str, int], names: list[str], *, test_per_class: int = 20,
                 ratio: float | None = None, normal_class: str | None = None, image_size: int = 64,
                 seeds: list[int] | None = None, preset: str = "quick", rates: Rates | None = None,
                 over: float = SLOW) -> dict[str, float]:
    """The methods of `names` whose share of a run (as the Synthesize page has it set: the dataset's class
    `counts`, the test split, the simulated imbalance, image size, seeds, preset) is over `over` seconds on this
    machine, with their seconds. Never raises: a run that cannot be estimated marks none (the estimate of the
    whole run says why)."""
    from .data import protocol_counts
    try:
        train = protocol_counts(counts, int(test_per_class), ratio, normal_class).train
        config = {"data": data, "seeds": list(seeds or [0]), "image_size": int(image_size), "preset": preset}
        secs = method_seconds(config, dict(train), list(names), rates=rates)
    except Exception:   # noqa: BLE001  no mark rather than a broken page
        return {}
    return {n: s for n, s in secs.items() if s > over}


# ---------------------------------------------------------------------------------------------
# Calibration from finished runs
# ---------------------------------------------------------------------------------------------
@dataclass
class _Measured:
    """One finished run: each task's seconds and load, and its units."""
    tasks: dict[str, tuple[str, float]]      # task id -> (rate key, units)
    threads: int
    seconds: dict[str, float]
    loads: dict[str, float | None]
    startup: float | None
    total: float | None                      # first stage to done, plus start-up when known


def stage_times(events: list[dict]) -> tuple[dict[str, float], dict[str, float | None]]:
    """Seconds of each task of a run (load and split are `prepare`, metrics is `aggregate`), and the load
    each started at, from events.jsonl."""
    marks = [e for e in events if e.get("kind") in ("stage", "done", "error") and isinstance(e.get("t"), (int, float))]
    seconds: dict[str, float] = {}
    loads: dict[str, float | None] = {}
    for ev, nxt in zip(marks, marks[1:]):
        if ev.get("kind") != "stage":
            continue
        name = str(ev.get("stage", ""))
        tid = {"load": "prepare", "split": "prepare", "metrics": "aggregate"}.get(name, name)
        seconds[tid] = seconds.get(tid, 0.0) + max(0.0, nxt["t"] - ev["t"])
        loads.setdefault(tid, ev.get("load"))
    return seconds, loads


def _config_of(raw: dict):
    from .experiment import ExperimentConfig
    import dataclasses
    names = {f.name for f in dataclasses.fields(ExperimentConfig)}
    return ExperimentConfig.from_dict({k: v for k, v in raw.items() if k in names})


def measure_run(run_dir: str | Path) -> _Measured | None:
    """What a finished run took, task by task; None when it did not finish in one go or cannot be read."""
    rd = RunDir(run_dir)
    try:
        evs = rd.events()
        if not evs or evs[-1].get("kind") != "done" or sum(e.get("stage") == "load" for e in evs
                                                            if e.get("kind") == "stage") != 1:
            return None
        cfg = _config_of(rd.config())
        if cfg.folds > 1:
            return None                     # the fold stages interleave; the model still scales them
        split = rd.split()
        units = {tid: (key, u) for tid, key, u in task_units(cfg, split["train_counts"], split["needed"],
                                                               sum(split["test_counts"].values()))}
    except Exception:   # noqa: BLE001  an old or damaged run folder: not used for the calibration
        return None
    seconds, loads = stage_times(evs)
    info = rd.job_info()
    startup = None
    if isinstance(info.get("started"), (int, float)):
        startup = max(0.0, evs[0]["t"] - info["started"])
    announced = next((e for e in reversed(evs) if e.get("kind") == "estimate"), {})
    if int(announced.get("processes") or 1) > 1:
        # trainings side by side: the stages interleave, so each task's own time (its `pace` event), as it
        # would have taken alone; load and aggregate ran alone, before and after the others
        paced = {str(e["task"]): float(e["seconds"]) / SIDE_BY_SIDE for e in evs if e.get("kind") == "pace"
                 and not e.get("reused") and isinstance(e.get("seconds"), (int, float))}
        seconds = {**{t: v for t, v in seconds.items() if t in ("prepare", "aggregate")}, **paced}
    span = evs[-1]["t"] - evs[0]["t"]
    env = rd.config().get("environment") or {}
    threads = int(cfg.num_threads or env.get("threads") or os.cpu_count() or 1)
    return _Measured(tasks=units, threads=threads, seconds=seconds, loads=loads, startup=startup,
                     total=span + (startup or 0.0))


def calibrate(run_dirs: list[str | Path]) -> Rates:
    """Rates pulled from the priors towards what these finished runs took (the median over runs, in log
    space, the prior weighing as `PRIOR_WEIGHT` runs), and the range their actual totals support."""
    measured = [m for m in (measure_run(d) for d in run_dirs) if m is not None]
    samples: dict[str, list[float]] = {}
    for m in measured:
        per_run: dict[str, list[float]] = {}
        for tid, (key, units) in m.tasks.items():
            if tid in m.seconds and units > 0 and key != "startup":
                per_run.setdefault(key, []).append(m.seconds[tid] / (units * slowdown(m.loads.get(tid), m.threads)))
        if m.startup is not None:
            per_run.setdefault("startup", []).append(m.startup / slowdown(m.loads.get("prepare"), m.threads))
        for key, values in per_run.items():
            samples.setdefault(key, []).append(statistics.median(values))
    rates = Rates(runs=len(measured))
    for key, values in samples.items():
        n = len(values)
        prior = rates.rate(key, _family(key))
        log_rate = (sum(math.log(max(v, 1e-9)) for v in values) + PRIOR_WEIGHT * math.log(prior)) / (n + PRIOR_WEIGHT)
        if n >= 3:              # enough runs: their median, the prior only as one more vote
            log_rate = math.log(max(statistics.median(values + [prior]), 1e-9))   # a stage of 0 s
        rates.per_unit[key] = _bounded(math.exp(log_rate), prior)
        rates.measured[key] = n
    ratios = []
    for m in measured:          # how far the model was from each run, knowing only the load at its start (as
        first = m.loads.get("prepare")      # an estimate made before the launch does): the range then carries
        predicted = sum(units * rates.rate(key, _family(key)) * slowdown(first, m.threads)   # how the load moved
                        for tid, (key, units) in m.tasks.items() if tid in m.seconds)
        actual = sum(m.seconds[tid] for tid in m.tasks if tid in m.seconds)
        if predicted > 0 and actual > 0:
            ratios.append(actual / predicted)
    if len(ratios) >= 3:
        q = statistics.quantiles(ratios, n=10, method="inclusive")
        rates.band = (min(MIN_BAND[0], q[0]), max(MIN_BAND[1], q[-1]))
    elif ratios:
        rates.band = (min(MIN_BAND[0], *ratios) * 0.9, max(MIN_BAND[1], *ratios) * 1.1)
    return rates


def _bounded(rate: float, prior: float) -> float:
    """A calibrated rate kept within `RATE_BOUND` times its prior: runs so small that their start-up is all they
    measured (a test's 2-step fits on 8 px images) priced a 510 s job at 70,000 s before."""
    return min(max(rate, prior / RATE_BOUND), prior * RATE_BOUND)


def finished_runs(roots: list[Path], limit: int = RUNS) -> list[Path]:
    """The newest run folders under `roots` (each a runs/ folder, or a workspace home holding <ws>/runs/)
    whose events end with `done` (`RunDir.finished_runs`)."""
    return [rd.root for rd in RunDir.finished_runs(roots, limit)]


_CACHE: dict[tuple, tuple[float, Rates]] = {}


def machine_rates(roots: list[str | Path] | None = None, ttl: float = 60.0) -> Rates:
    """Rates calibrated from the newest finished runs of this machine (every workspace under $DEFECTAUG_HOME,
    or the given runs/ folders), cached for `ttl` seconds."""
    if roots is None:
        from .workspace import workspace_home
        roots = [workspace_home()]
    key = tuple(str(Path(r).resolve()) for r in roots)
    hit = _CACHE.get(key)
    if hit and time.time() - hit[0] < ttl:
        return hit[1]
    try:
        rates = calibrate(finished_runs([Path(r) for r in roots]))
    except Exception:   # noqa: BLE001  a run folder nobody foresaw: the priors, never a broken Synthesize page
        rates = Rates()
    _CACHE[key] = (time.time(), rates)
    return rates


def rates_for_run(run_dir: str | Path) -> Rates:
    """The calibration that applies to a run: the machine's when the run is in a workspace, else its siblings'."""
    from .workspace import workspace_home
    run_dir = Path(run_dir).resolve()
    home = workspace_home().resolve()
    return machine_rates([home] if home in run_dir.parents else [run_dir.parent])


# ---------------------------------------------------------------------------------------------
# Time left of a running run
# ---------------------------------------------------------------------------------------------
def remaining(run_dir: str | Path, events: list[dict] | None = None, now: float | None = None,
              rates: Rates | None = None) -> float | None:
    """Seconds left of a running run by the same model: the tasks not done yet at their estimated times,
    scaled by how fast this run's finished tasks went against the model. None until the split is known."""
    rd = RunDir(run_dir)
    evs = rd.events() if events is None else events
    if not evs:
        return None
    try:
        cfg = _config_of(rd.config())
        split = rd.split()
        units = task_units(cfg, split["train_counts"], split["needed"], sum(split["test_counts"].values()))
    except Exception:   # noqa: BLE001  not split yet, or an old run folder: unknown
        return None
    rates = rates or rates_for_run(run_dir)
    now = time.time() if now is None else now
    seconds, _ = stage_times(evs + [{"kind": "done", "t": now}])
    current = next((str(e.get("stage")) for e in reversed(evs) if e.get("kind") == "stage"), "")
    current = {"load": "prepare", "split": "prepare", "metrics": "aggregate"}.get(current, current)
    predicted = {tid: u * rates.rate(key, _family(key)) for tid, key, u in units if key != "startup"}
    done = [t for t in predicted if t in seconds and t != current]
    pred_done = sum(predicted[t] for t in done)
    speed = 1.0
    if pred_done > 0:           # this run's own pace, trusted as its finished tasks add up
        ratio = sum(seconds[t] for t in done) / pred_done
        weight = pred_done / (pred_done + 20.0)
        speed = math.exp(weight * math.log(min(max(ratio, 0.05), 20.0)))
    else:
        speed = slowdown(current_load(), planned_threads(cfg, current_load()))
    left = sum(p * speed for t, p in predicted.items() if t not in seconds)
    if current in predicted:
        left += max(0.0, predicted[current] * speed - seconds.get(current, 0.0))
    return left


__all__ = ["Estimate", "Rates", "calibrate", "current_load", "estimate", "finished_runs", "fmt", "machine_rates",
           "measure_run", "method_seconds", "planned_steps", "sampling_shares", "rates_for_run", "remaining", "slowdown", "stage_times", "task_units"]
