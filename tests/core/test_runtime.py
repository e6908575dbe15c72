"""core.runtime.tune_allocator: freed training buffers stay in the heap instead of page-faulting back in.

Each case runs in a fresh interpreter (the setting is process-wide and other tests already trained
models in this one) and counts the minor page faults of a loop shaped like a training step: a few
4 MiB activations alive at once, all freed at the end of the step.
"""
from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import resource, sys
import torch
sys.path.insert(0, {root!r})
torch.set_num_threads(1)
if sys.argv[1] == "tuned":
    from core.runtime import tune_allocator
    assert tune_allocator() and tune_allocator()
x = torch.ones(64, 16, 32, 32)            # 4 MiB, like the first block of the classifier
def step():
    acts = [x * float(i) for i in range(6)]   # activations alive together, freed together
    return float(sum(a.sum() for a in acts))
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
values = [step() for _ in range(40)]
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, values[-1])
"""


def _faults(mode: str) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), mode], capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    return int(out[0]), out[1]


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc mallopt only")
def test_tuned_allocator_stops_the_page_faults_and_computes_the_same():
    plain, plain_value = _faults("plain")
    tuned, tuned_value = min(_faults("tuned") for _ in range(2))   # one stray 8 MiB mapping is not the steps
    assert tuned_value == plain_value
    # 40 steps x 6 x 4 MiB = 240 MiB paged in again without the setting (~61,000 faults of 4 KiB)
    assert plain > 10_000, plain
    assert tuned < plain / 20, (tuned, plain)


def test_tune_allocator_is_safe_to_call_anywhere():
    from core.runtime import tune_allocator
    first = tune_allocator()
    assert isinstance(first, bool) and tune_allocator() is first
