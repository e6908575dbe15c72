"""core.views.progress: a run's fraction and time left from its events (estimate, task, progress, pace)."""
from __future__ import annotations

from core.views.progress import follow, task_fraction


def _events(t0: float = 1000.0) -> list[dict]:
    """A run whose model said 10 s per training and 100 s for a diffusion fit of 200 steps."""
    tasks = {"prepare": 2.0, "train:baseline_s0": 10.0, "fit:ddpm_s0": 100.0, "train:ddpm_s0": 10.0,
             "aggregate": 1.0}
    return [{"t": t0, "kind": "task", "task": "prepare"},
            {"t": t0 + 2, "kind": "pace", "task": "prepare", "seconds": 2.0, "estimated": None},
            {"t": t0 + 2, "kind": "estimate", "tasks": tasks, "steps": {"fit:ddpm_s0": 200}, "done": [],
             "seconds": 123.0},
            {"t": t0 + 2, "kind": "task", "task": "train:baseline_s0"},
            {"t": t0 + 12, "kind": "pace", "task": "train:baseline_s0", "seconds": 10.0, "estimated": 10.0},
            {"t": t0 + 12, "kind": "task", "task": "fit:ddpm_s0"}]


def _fit_steps(evs: list[dict], seconds_per_step: float, steps: range) -> list[dict]:
    t0 = evs[-1]["t"]
    return evs + [{"t": t0 + seconds_per_step * s, "kind": "progress", "stage": "train ddpm [all classes]",
                   "step": s, "total": 200} for s in steps]


def test_a_fit_that_runs_ten_times_slower_than_estimated_shows_it_as_its_steps_go():
    evs = _events()
    seen = []
    for upto in (20, 60, 100, 140, 180):        # 5 s a step: 1,000 s for what the model priced at 100 s
        run = _fit_steps(evs, 5.0, range(1, upto + 1))
        f = follow(run, run[-1]["t"])
        seen.append((f.fraction, f.remaining, f.task_fraction))
    fractions, lefts, shares = zip(*seen)
    assert list(fractions) == sorted(fractions) and fractions[0] < fractions[-1]      # rising with the steps
    assert list(lefts) == sorted(lefts, reverse=True)                                # falling with them
    assert shares[2] == 0.85 * 100 / 200
    # half way through the fit its own pace rules: about the 500 s of steps left (+ sampling), never seconds
    half = _fit_steps(evs, 5.0, range(1, 101))
    left = follow(half, half[-1]["t"]).remaining
    assert 450 < left < 1000


def test_between_two_progress_events_the_time_left_falls_with_the_clock():
    run = _fit_steps(_events(), 5.0, range(1, 41))
    t = run[-1]["t"]
    a, b = follow(run, t), follow(run, t + 3)
    assert b.remaining < a.remaining and b.fraction == a.fraction


def test_no_estimate_event_means_unknown_and_a_task_without_steps_moves_by_its_time():
    evs = _events()
    assert follow(evs[:2], 1003.0) is None
    quiet = evs[:5] + [{"t": 1012.0, "kind": "task", "task": "aggregate"}]
    early, late = follow(quiet, 1012.5), follow(quiet, 1100.0)     # aggregate priced at 1 s, still going at 88 s
    assert early.fraction < late.fraction < 1.0
    assert late.remaining >= 8.0                                    # not "0 s" while it obviously runs on


def test_task_fraction_counts_every_generator_and_the_sampling():
    per_class = [{"t": 1, "kind": "progress", "stage": "train dcgan [crack]", "step": 50, "total": 50},
                 {"t": 2, "kind": "progress", "stage": "train dcgan [spot]", "step": 25, "total": 50}]
    share, at = task_fraction("fit:dcgan_s0", per_class, 100)
    assert share == 0.85 * 0.75 and at == 2
    sampled = per_class + [{"t": 3, "kind": "progress", "stage": "sample:dcgan_s0", "step": 1, "total": 2}]
    assert task_fraction("fit:dcgan_s0", sampled, 100)[0] == 0.85 + 0.15 * 0.5
    assert task_fraction("quality:dcgan_s0", per_class, None) == (None, None)
    train = [{"t": 5, "kind": "progress", "stage": "train:smote_s0", "step": 30, "total": 120}]
    assert task_fraction("train:smote_s0", train, None) == (0.25, 5)


def test_the_fraction_never_goes_back_when_a_task_reports_its_first_step_late():
    """A classifier's training reports its first step after its first epoch: until then the figure waits (it
    never runs ahead by the clock and falls back when the step count arrives)."""
    evs = _events()[:5] + [{"t": 1012.0, "kind": "task", "task": "train:ddpm_s0"}]
    seen = [follow(evs, 1012.0 + dt).fraction for dt in (1, 5, 30)]
    evs.append({"t": 1042.0, "kind": "progress", "stage": "train:ddpm_s0", "step": 1, "total": 30})
    seen += [follow(evs, 1043.0).fraction]
    assert seen == sorted(seen)


def test_a_diffusion_fit_weighs_its_sampling_by_the_estimates_share_and_counts_it_in_images():
    steps = [{"t": 1, "kind": "progress", "stage": "train ddpm [all classes]", "step": 80, "total": 80}]
    sampled = steps + [{"t": 9, "kind": "progress", "stage": "sample:ddpm_s0", "step": 150, "total": 600}]
    assert abs(task_fraction("fit:ddpm_s0", steps, 80, sampling=0.7)[0] - 0.3) < 1e-9
    assert abs(task_fraction("fit:ddpm_s0", sampled, 80, sampling=0.7)[0] - (0.3 + 0.7 * 0.25)) < 1e-9


def test_a_long_start_up_before_the_first_step_is_not_read_as_slow_steps():
    """A fit that spends 30 s building its model before 200 steps of 0.5 s: at its 4th step the time left is about
    the 98 s of steps left (+ the rest of the run), not the start-up spread over every step (30 s per 2% = 1,500 s)."""
    evs = _events()
    t0 = evs[-1]["t"]
    run = evs + [{"t": t0 + 30 + 0.5 * s, "kind": "progress", "stage": "train ddpm [all classes]", "step": s,
                  "total": 200} for s in range(1, 5)]
    f = follow(run, run[-1]["t"])
    assert f.task_fraction == 0.85 * 4 / 200
    assert 80 < f.remaining < 250, f.remaining


def test_a_fit_drawing_its_images_is_timed_by_its_images_not_by_its_training_steps():
    """A diffusion fit whose model gave its sampling 80% of the fit: 200 training steps in 40 s, then 1,000 images
    drawn at 100 a second. Three seconds into the drawing, 700 images (7 s) are left: the time left follows the
    images, not the training steps' pace stretched over the 80% (160 s)."""
    evs = _events()
    evs[2]["sampling"] = {"fit:ddpm_s0": 0.8}
    t0 = evs[-1]["t"]
    run = evs + [{"t": t0 + 0.2 * s, "kind": "progress", "stage": "train ddpm [all classes]", "step": s,
                  "total": 200} for s in range(1, 201)]
    run += [{"t": t0 + 40 + k, "kind": "progress", "stage": "sample:ddpm_s0", "step": 100 * k, "total": 1000}
            for k in range(4)]
    f = follow(run, run[-1]["t"])
    assert abs(f.task_fraction - (0.2 + 0.8 * 0.3)) < 1e-9
    rest = 11.0 * f.pace                       # train:ddpm_s0 and aggregate, at the run's pace
    assert f.remaining < 7 + rest + 20, (f.remaining, rest)
