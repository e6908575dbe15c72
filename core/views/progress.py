"""How far a running experiment is and how long it has left, from its events alone (no import of the experiment:
the Jobs page, the sidebar and the CLI read a run folder, never the plan).

The runner writes what this needs into `events.jsonl`:
    estimate  {"tasks": {task id: seconds}, "steps": {fit task id: training steps}, "sampling": {fit task id:
              share}, "done": [task ids], ...} once the split is known: core.estimate's model of every task, the
              steps each fit will count, and the share of a fit its sampling takes where that is large
    task      {"task": id, ...}                              a task starts
    progress  {"stage": str, "step": int, "total": int}      inside it (a classifier's steps, each generator's)
    pace      {"task": id, "seconds": float, "estimated": float}   a task ended: its own time against the model

    f = follow(events, now)         # Followed(fraction, remaining, ...) or None before the estimate exists

- Each task weighs its estimated seconds; the run's fraction is the estimated work done (finished tasks whole, the
  running one by its own step counts) over the whole. A figure moves whenever a step count does.
- Time left = the running task's remainder (its own pace over its steps so far, read from its first step on so that
  its start-up is not taken for slow steps, and a fit's sampling by its own images drawn, trusted as its steps add
  up) plus
  the tasks not started at their estimate x the run's pace so far (its finished tasks' actual / estimated time,
  trusted as they add up). A task that runs long never reads "3 s left": its own pace carries it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

PRIOR_TRUST = 20.0   # estimated seconds of finished work at which the run's own pace counts as much as the model
                     # (at most 5% of the run's estimate)
OWN_TRUST = 0.03     # share of a task's steps at which its own step pace counts as much as the model
STEPPED = ("train", "fit")   # the tasks that report step counts
SAMPLING_SHARE = 0.15   # of a generative fit: drawing the synthetic images after its training steps (the
                        # estimate event's `sampling` says it per fit where it is more: a diffusion model's)

__all__ = ["Followed", "follow", "task_fraction"]


@dataclass
class Followed:
    fraction: float              # the run, 0..1
    remaining: float             # seconds
    task: str                    # the task running now ("" between tasks)
    task_fraction: float         # of that task, 0..1
    pace: float                  # actual / estimated seconds of the work measured so far (1: as estimated)
    estimate: float              # the model's total seconds at the start (the `estimate` event)


def _last(events: list[dict], kind: str) -> tuple[int, dict] | None:
    for i in range(len(events) - 1, -1, -1):
        if events[i].get("kind") == kind:
            return i, events[i]
    return None


def task_fraction(task: str, after: list[dict], planned_steps: int | None,
                  sampling: float | None = None) -> tuple[float | None, float | None]:
    """A task's share done from the progress events since it started; None for a task that counts no steps.
    A classifier's training: its last step / total. A fit: the steps of all its generators together over the
    steps planned for them (pre-training included), then the classes sampled. Also the time of the last progress
    event (the moment that share was true)."""
    streams: dict[str, tuple[int, int]] = {}
    sampled: tuple[int, int] | None = None
    at = None
    for ev in after:
        if ev.get("kind") != "progress":
            continue
        at = ev.get("t") if isinstance(ev.get("t"), (int, float)) else at
        step, total = int(ev.get("step", 0) or 0), int(ev.get("total", 0) or 0)
        if str(ev.get("stage", "")).startswith("sample:"):
            sampled = (step, total)
        elif total > 0:
            streams[str(ev.get("stage", ""))] = (step, total)
    kind = task.split(":", 1)[0]
    if kind == "train":
        if not streams:
            return None, None
        step, total = list(streams.values())[-1]
        return min(1.0, step / total), at
    if kind != "fit":
        return None, None
    sample_part = (sampled[0] / sampled[1]) if sampled and sampled[1] else 0.0
    planned = planned_steps or sum(t for _, t in streams.values())
    if not planned:                              # a method without training steps: its classes sampled
        return (sample_part, at) if sampled else (None, None)
    trained = 1.0 if sampled else min(1.0, sum(s for s, _ in streams.values()) / planned)
    share = SAMPLING_SHARE if sampling is None else sampling
    return (1 - share) * trained + share * sample_part, at


def _sampling_span(after: list[dict]) -> tuple[float, float, float, float] | None:
    """(time, share of the images) at the first and the last `sample:` progress event of a fit, once the images
    drawn have moved between them: the pace of its sampling, which differs from its training steps' pace."""
    seen = [(float(ev["t"]), ev["step"] / ev["total"]) for ev in after
            if ev.get("kind") == "progress" and str(ev.get("stage", "")).startswith("sample:")
            and isinstance(ev.get("t"), (int, float)) and int(ev.get("total", 0) or 0) > 0]
    if len(seen) < 2 or seen[-1][1] <= seen[0][1] or seen[-1][0] <= seen[0][0]:
        return None
    return seen[0][0], seen[0][1], seen[-1][0], seen[-1][1]


def _trusted(ratio: float, weight: float) -> float:
    """The pace `ratio` trusted by `weight` (0: the model's 1.0; 1: the ratio), in log space."""
    return math.exp(weight * math.log(min(max(ratio, 0.02), 50.0)))


def follow(events: list[dict], now: float) -> Followed | None:
    """See the module docstring. None until the runner wrote its `estimate` event (before the split)."""
    found = _last(events, "estimate")
    if found is None:
        return None
    _, est = found
    tasks = {str(k): max(float(v), 0.01) for k, v in (est.get("tasks") or {}).items()
             if isinstance(v, (int, float))}
    if not tasks:
        return None
    planned = {str(k): int(v) for k, v in (est.get("steps") or {}).items() if isinstance(v, (int, float))}
    sampling = {str(k): float(v) for k, v in (est.get("sampling") or {}).items() if isinstance(v, (int, float))}
    done = {t for t in est.get("done") or [] if t in tasks}
    spent, measured = 0.0, 0.0            # actual and estimated seconds of the tasks finished in this session
    started: dict[str, int] = {}
    for i, ev in enumerate(events):
        kind, tid = ev.get("kind"), ev.get("task")
        if kind == "task" and tid in tasks:
            started[tid] = i
        elif kind == "pace" and tid in tasks:
            done.add(tid)
            started.pop(tid, None)
            if not ev.get("reused") and isinstance(ev.get("seconds"), (int, float)):
                spent += float(ev["seconds"])
                measured += tasks[tid]
    running = [t for t in started if t not in done]
    # the running tasks: their share done, by their steps or (no steps) by the time they took so far
    shares: dict[str, float | None] = {}
    in_task: dict[str, float] = {}
    to_last: dict[str, float] = {}       # seconds from the task's start to its last progress event
    first: dict[str, tuple[float, float]] = {}   # (share, seconds from the start) at its first progress event
    drawing: dict[str, tuple[float, float, float, float]] = {}   # a fit's sampling pace (_sampling_span)
    for tid in running:
        i = started[tid]
        t0 = float(events[i].get("t", now))
        in_task[tid] = max(0.0, now - t0)
        shares[tid], at = task_fraction(tid, events[i + 1:], planned.get(tid), sampling.get(tid))
        to_last[tid] = max(0.0, min(now, at if at is not None else now) - t0)
        j = next((k for k in range(i + 1, len(events)) if events[k].get("kind") == "progress"), None)
        if shares[tid] and j is not None:
            s0, a0 = task_fraction(tid, events[i + 1:j + 1], planned.get(tid), sampling.get(tid))
            if s0 is not None and a0 is not None:
                first[tid] = (s0, max(0.0, a0 - t0))
            span = _sampling_span(events[i + 1:]) if tid.startswith("fit:") else None
            if span is not None:
                drawing[tid] = span
    stepped_spent = sum(to_last[t] for t in running if shares[t])
    stepped_measured = sum(tasks[t] * shares[t] for t in running if shares[t])
    base = spent + stepped_spent
    work = measured + stepped_measured
    trust = min(PRIOR_TRUST, 0.05 * sum(tasks.values()))     # a short run trusts its own pace sooner
    pace = _trusted(base / work, work / (work + trust)) if work > 0 and base > 0 else 1.0
    left, done_work = 0.0, sum(tasks[t] for t in done)
    for tid in running:
        expected = tasks[tid] * pace
        share, t_in = shares[tid], in_task[tid]
        if share:                                    # its own step pace, trusted as its steps add up; counted
            s0, a0 = first.get(tid, (0.0, 0.0))     # from its last step, less the time since. The pace is read
            if tid in drawing:                       # a fit drawing its images: their own pace, since its
                ta, pa, tb, pb = drawing[tid]        # training steps cost otherwise
                own = (tb - ta) * (1 - pb) / (pb - pa)
                moved = (sampling.get(tid, SAMPLING_SHARE)) * (pb - pa)
                w = moved / (moved + OWN_TRUST)
            elif share - s0 > 0 and to_last[tid] > a0:   # from its first step on: the start-up before it
                own = (to_last[tid] - a0) * (1 - share) / (share - s0)   # (building the model, loading) is not
                w = (share - s0) / (share - s0 + OWN_TRUST)             # per step
            else:                                    # one step so far: no pace of its own yet, the model's
                own, w = 0.0, 0.0
            at_last = w * own + (1 - w) * expected * (1 - share)
            since = t_in - to_last[tid]
            left += max(at_last - since, 0.1 * since)
        else:             # no step counted: a task that never counts any moves by the time it has taken; one
            share = 0.0   # that will (a training before its first epoch) waits for it, so the figure never goes back
            if tid.split(":", 1)[0] not in STEPPED:
                share = 0.9 * t_in / expected if t_in < expected else 1 - 0.1 * expected / max(t_in, 1e-9)
            left += max(expected - t_in, 0.1 * t_in)
        shares[tid] = share
        done_work += tasks[tid] * share
    left += sum(tasks[t] for t in tasks if t not in done and t not in started) * pace
    left /= max(1, int(est.get("processes") or 1))   # trainings side by side share what is left
    total = sum(tasks.values())
    current = running[-1] if running else ""
    fraction = round(max(0.0, min(1.0, done_work / total)), 6)     # no float noise between two reads
    return Followed(fraction=fraction, remaining=max(0.0, left), task=current,
                    task_fraction=float(shares.get(current) or 0.0), pace=pace,
                    estimate=float(est.get("seconds") or total))
