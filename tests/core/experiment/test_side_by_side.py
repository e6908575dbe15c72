"""A job's trainings side by side (issue 37, item 14: a fixed thread count per training, parallelism across
trainings): a long run on a CPU with two cores for the job goes to two processes; its metrics are those of the
same run in one process, its estimate says how many processes share it, and its timings still calibrate the
machine's estimate (each task's own time, not the interleaved stages)."""
from __future__ import annotations

import os

from core import estimate as E
from core import runtime
from core.experiment import run
from core.jobs.kinds import job_function
from core.rundir import RunDir
from tests.conftest import write_dataset
from tests.core.experiment.test_reproducible import differences, numbers

CONFIG = {"methods": ["random_oversample"], "seeds": [0, 1], "ratio": None, "image_size": 16, "test_per_class": 3,
          "device": "cpu", "quality": False, "baselines": ["equal_steps", "class_weighted"],
          "overrides": {"classifier": {"epochs": 2, "width": 4}}}


def test_a_long_job_trains_side_by_side_with_the_numbers_of_one_process(tmp_path, monkeypatch):
    data = write_dataset(tmp_path, {"normal": 16, "crack": 8, "spot": 8}, size=16)
    config = dict(CONFIG, data=str(data))
    one = run(config, tmp_path / "one")
    monkeypatch.setenv("DEFECTAUG_JOB_THREADS", "2")        # the worker's share of the cores for this job
    monkeypatch.setattr(runtime, "PARALLEL_FROM", 0.0)       # this tiny run counts as long
    job_function("experiment")(config, tmp_path / "two")
    rd = RunDir(tmp_path / "two")
    assert not differences(numbers(one), numbers(rd.metrics()))
    events = rd.events()
    (announced,) = [e for e in events if e["kind"] == "estimate"]
    assert announced["processes"] == 2
    trained = {e["pid"] for e in events if e["kind"] == "task" and e["task"].startswith("train:")}
    assert len(trained) >= 2 and os.getpid() not in trained   # pool processes (2 per wave)
    assert events[-1]["kind"] == "done"
    # the run calibrates the estimate from each task's own time (its pace event), not the interleaved stages
    measured = E.measure_run(rd.root)
    paces = {e["task"]: e["seconds"] for e in events if e["kind"] == "pace" and not e.get("reused")}
    assert measured is not None
    assert measured.seconds["train:random_oversample_s1"] == paces["train:random_oversample_s1"] / E.SIDE_BY_SIDE
    assert E.calibrate([rd.root]).measured["train"] == 1


def test_a_short_job_stays_in_one_process(tmp_path, monkeypatch):
    data = write_dataset(tmp_path, {"normal": 16, "crack": 8, "spot": 8}, size=16)
    monkeypatch.setenv("DEFECTAUG_JOB_THREADS", "2")
    job_function("experiment")(dict(CONFIG, data=str(data), seeds=[0]), tmp_path / "run")
    events = RunDir(tmp_path / "run").events()
    assert {e["pid"] for e in events if e["kind"] == "task"} == {os.getpid()}
    assert [e.get("processes") for e in events if e["kind"] == "estimate"] == [1]


def test_a_training_process_killed_fails_the_run_with_a_message_instead_of_hanging(tmp_path):
    """A process of the pool killed mid-training (out of memory, an operator's kill): the run ends with a message
    saying what happened and how to go on; a Pool lost the chain and waited for it forever."""
    import json
    import signal
    import subprocess
    import sys
    import time
    from tests.conftest import REPO
    data = write_dataset(tmp_path, {"normal": 16, "crack": 8, "spot": 8}, size=16)
    config = dict(CONFIG, data=str(data), overrides={"classifier": {"epochs": 400, "width": 4}})
    code = ("import json, sys; from core.experiment import run_in_processes\n"
            "run_in_processes(json.loads(sys.argv[1]), sys.argv[2], processes=2)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(config), str(tmp_path / "run")], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rd = RunDir(tmp_path / "run")
    victim = None
    for _ in range(1200):                         # until a pool process has started a training
        started = [e for e in rd.events() if e["kind"] == "task" and e["task"].startswith("train:")
                   and e["pid"] != proc.pid]
        if started:
            victim = started[0]["pid"]
            break
        time.sleep(0.25)
    assert victim is not None, proc.communicate(timeout=60)
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=600)       # it ends (a hang would stop here, not pass)
    assert proc.returncode != 0
    assert "a process training part of this run ended before finishing it" in err, err[-2000:]
    assert "run it again to go on from there" in err
