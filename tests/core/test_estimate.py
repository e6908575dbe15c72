"""core.estimate: the work of each task, the calibration from finished runs' stage times, the range, and the
time left of a running run (the Synthesize estimate and the Jobs page's "remaining" are this one model)."""
from __future__ import annotations

import json

import pytest

from core import estimate as E
from core.experiment import ExperimentConfig
from core.rundir import RunDir

COUNTS = {"normal": 260, "scratch": 30, "spot": 25, "crack": 22}


def _cfg(**kw) -> ExperimentConfig:
    return ExperimentConfig.from_dict({"data": "sample", "methods": ["smote"], "seeds": [0], "ratio": None, **kw})


def _fake_run(root, name: str, cfg: ExperimentConfig, factor: float, load: float = 0.0, start: float = 1000.0):
    """A finished run folder whose stages took `factor` x the prior model's seconds (at `load`)."""
    rd = RunDir(root / name)
    rd.root.mkdir(parents=True)
    rd.write_config(dict(cfg.resolved(), environment={"threads": cfg.num_threads}))
    from core.data import balance_targets
    rd.write_split({"train_counts": COUNTS, "needed": balance_targets(COUNTS), "test_counts": {c: 20 for c in COUNTS},
                    "normal_class": "normal"})
    t, lines = start, []
    tasks = E.task_units(cfg, COUNTS, n_test=80)
    startup = tasks[0][2] * E.PRIOR["startup"] * factor
    rd.write_job_info({"started": start - startup, "status": "done"})
    for tid, key, units in tasks[1:]:
        stage = {"prepare": "load", "aggregate": "metrics"}.get(tid, tid)
        lines.append({"t": t, "kind": "stage", "stage": stage, "load": load})
        t += units * E.Rates().rate(key, "interpolation") * factor * E.slowdown(load, cfg.num_threads)
    lines.append({"t": t, "kind": "done", "message": "ok"})
    rd.events_path.write_text("".join(json.dumps(ev) + "\n" for ev in lines))
    return rd.root, t - start + startup


def test_work_grows_with_seeds_methods_image_size_and_generator_steps():
    one = {tid: u for tid, _, u in E.task_units(_cfg(), COUNTS)}
    three = {tid: u for tid, _, u in E.task_units(_cfg(seeds=[0, 1, 2]), COUNTS)}
    assert sum(three.values()) == pytest.approx(3 * sum(one.values()), rel=0.02)
    assert set(one) >= {"prepare", "train:baseline_paper_s0", "fit:smote_s0", "quality:smote_s0", "train:smote_s0",
                        "aggregate", "startup"}
    assert one["train:baseline_paper_s0"] < one["train:baseline_equal_steps_s0"] == pytest.approx(one["train:smote_s0"])
    small = {tid: u for tid, _, u in E.task_units(_cfg(image_size=32), COUNTS)}
    assert small["train:smote_s0"] == pytest.approx(one["train:smote_s0"] / 4)
    gan = {tid: u for tid, _, u in E.task_units(_cfg(methods=["dcgan"]), COUNTS)}
    half = {tid: u for tid, _, u in E.task_units(_cfg(methods=["dcgan"], overrides={"dcgan": {"steps": 250}}), COUNTS)}
    assert gan["fit:dcgan_s0"] == pytest.approx(2 * half["fit:dcgan_s0"])
    assert gan["fit:dcgan_s0"] > 50 * one["fit:smote_s0"]


def test_the_work_counts_each_baseline_and_the_linear_fit_once_per_fold():
    units = {tid: u for tid, _, u in E.task_units(_cfg(seeds=[0, 1], folds=2), COUNTS)}
    for fold in (0, 1):
        for b in ("paper", "equal_steps", "class_weighted", "logit_adjusted", "drw"):
            assert units[f"train:baseline_{b}_f{fold}_s1"] > 0
        assert units[f"train:baseline_linear_f{fold}_s0"] > 0 == units[f"train:baseline_linear_f{fold}_s1"]
    cnn = units["train:baseline_equal_steps_f0_s0"]
    assert units["train:baseline_drw_f0_s0"] == units["train:baseline_logit_adjusted_f0_s0"] == cnn
    fewer = {tid: u for tid, _, u in E.task_units(_cfg(seeds=[0, 1], folds=2, baselines=["equal_steps"]), COUNTS)}
    assert sum(units.values()) - sum(fewer.values()) == pytest.approx(
        sum(u for tid, u in units.items() if "baseline_" in tid and "equal_steps" not in tid))
    est = E.estimate(_cfg(), COUNTS, rates=E.Rates(), load=0.0)       # no baseline costs more than the rest together
    base = {t: s for t, s in est.tasks.items() if "baseline_" in t}
    assert max(base.values()) < sum(base.values()) - max(base.values())


def test_the_first_run_default_on_the_sample_covers_both_machines_measured(monkeypatch):
    """The README path (21 trainings on one thread each) took 430 s on the EPYC of 2026-12-07; on the Xeon the
    priors were first measured on it took 62 s for 12 trainings on two threads, about 150 s for these 21 on one:
    an uncalibrated estimate's range holds both."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.delenv("DEFECTAUG_JOB_THREADS", raising=False)
    est = E.estimate(_cfg(seeds=[0, 1, 2]), COUNTS, rates=E.Rates(), load=0.0, processes=1)
    assert est.low < 150 and 430 < est.high and est.low < est.seconds < est.high
    assert est.text().count(" to ") == 1


def test_a_long_run_on_two_cores_is_estimated_with_its_trainings_side_by_side(monkeypatch):
    """A job's trainings go two at a time on 2 cores (runtime.local_processes): each slower by SIDE_BY_SIDE, the
    run shorter by half; a short run, a GPU or one core keeps them one after another."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.delenv("DEFECTAUG_JOB_THREADS", raising=False)
    cfg = _cfg(seeds=[0, 1, 2])
    one = E.estimate(cfg, COUNTS, rates=E.Rates(), load=0.0, processes=1)
    two = E.estimate(cfg, COUNTS, rates=E.Rates(), load=0.0)
    assert two.processes == 2 and one.processes == 1
    work = one.seconds - one.tasks["startup"]
    assert two.seconds == pytest.approx(one.tasks["startup"] + work * E.SIDE_BY_SIDE / 2)
    assert two.tasks["train:smote_s0"] == pytest.approx(one.tasks["train:smote_s0"] * E.SIDE_BY_SIDE)
    short = E.estimate(_cfg(seeds=[0], image_size=16), COUNTS, rates=E.Rates(), load=0.0)
    assert short.processes == 1                      # under runtime.PARALLEL_FROM: not worth a process start
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert E.estimate(cfg, COUNTS, rates=E.Rates(), load=0.0).processes == 1


def test_calibration_learns_this_machines_pace_and_its_spread(tmp_path):
    cfg = _cfg(seeds=[0, 1])
    actual = {}
    for i, f in enumerate([1.8, 2.0, 2.2, 1.9]):         # this machine: about twice the prior's time
        root, actual[i] = _fake_run(tmp_path / "runs", f"r{i}", cfg, f, start=1000 + 1000 * i)
    rates = E.calibrate(E.finished_runs([tmp_path / "runs"]))
    assert rates.runs == 4 and rates.measured["train"] == 4
    assert rates.per_unit["train"] == pytest.approx(2 * E.PRIOR["train"], rel=0.15)
    est = E.estimate(cfg, COUNTS, n_test=80, rates=rates, load=0.0, processes=1)   # as the runs ran
    assert est.low <= actual[0] <= est.high
    assert est.seconds == pytest.approx(2 * E.estimate(cfg, COUNTS, n_test=80, rates=E.Rates(), load=0.0,
                                                       processes=1).seconds, rel=0.15)
    assert (est.low / est.seconds, est.high / est.seconds) == pytest.approx(E.MIN_BAND, rel=0.05)
    # a method never timed here widens the range and is named
    gan = E.estimate(_cfg(methods=["dcgan"]), COUNTS, rates=rates, load=0.0)
    assert gan.uncalibrated == ["dcgan"] and gan.high / gan.seconds >= E.UNCALIBRATED_BAND[1] * (1 - 1e-9)   # float


def test_load_slows_a_team_of_threads_more_than_one_thread():
    assert E.slowdown(None, 2, cores=2) == E.slowdown(1.0, 2, cores=2) == 1.0
    assert E.slowdown(8.0, 2, cores=2) == 16.0 > E.slowdown(8.0, 1, cores=2) > E.slowdown(2.0, 1, cores=2)


def test_remaining_follows_the_runs_own_pace(tmp_path):
    cfg = _cfg(seeds=[0], num_threads=2)      # on an idle 2-core machine: the model's own pace
    root, total = _fake_run(tmp_path / "runs", "done", cfg, 1.0)
    evs = RunDir(root).events()
    stages = [e for e in evs if e["kind"] == "stage"]
    rates = E.Rates()
    # half way through (at the start of train:smote_s0), on the model's own pace
    i = next(k for k, e in enumerate(stages) if e["stage"] == "train:smote_s0")
    now = stages[i]["t"]
    left = E.remaining(root, [e for e in evs if e["t"] <= now], now=now, rates=rates)
    assert left == pytest.approx(evs[-1]["t"] - now, rel=0.05)
    # the same run going twice as slow: its finished tasks say so, and the time left grows towards double as
    # they add up (18 s of finished work here count for about half against the model's 20 s of trust)
    slow = [dict(e, t=evs[0]["t"] + 2 * (e["t"] - evs[0]["t"])) for e in evs if e["t"] <= now]
    left2 = E.remaining(root, slow, now=slow[-1]["t"], rates=rates)
    assert 1.3 * left < left2 < 2 * left
    # later means less left; nothing is known before the split
    later = E.remaining(root, [e for e in evs if e["t"] <= now], now=now + 5, rates=rates)
    assert later < left
    assert E.remaining(tmp_path / "nothing", [], rates=rates) is None


def test_runs_whose_stages_took_no_time_calibrate_without_error(tmp_path):
    for i in range(4):      # tiny test runs: every stage within the clock's resolution
        _fake_run(tmp_path / "runs", f"r{i}", _cfg(), 0.0, start=1000 + i)
    rates = E.calibrate(E.finished_runs([tmp_path / "runs"]))
    assert rates.runs == 4 and all(v > 0 for v in rates.per_unit.values())
    assert E.machine_rates([tmp_path / "runs"]).runs == 4


def test_slow_methods_marks_the_generators_over_an_hour_and_never_raises():
    """The Synthesize picker's "over an hour here" mark (core.estimate.slow_methods): a GAN at 256 px and three
    seeds is over the hour on the priors, smote is not; a dataset with no classes marks nothing."""
    counts = {"normal": 300, "crack": 60, "spot": 50}
    slow = E.slow_methods("sample", counts, ["smote", "dcgan"], image_size=256, seeds=[0, 1, 2], rates=E.Rates())
    assert list(slow) == ["dcgan"] and slow["dcgan"] > E.SLOW
    every = E.slow_methods("sample", counts, ["smote", "dcgan"], rates=E.Rates(), over=0.0)
    assert set(every) == {"smote", "dcgan"} and every["smote"] < every["dcgan"]
    assert E.slow_methods("sample", {}, ["smote"], rates=E.Rates(), over=0.0) == {}
