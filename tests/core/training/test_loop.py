"""The generic training loop, driven by a process that is no GAN (a tiny denoising autoencoder, the kind of
stage BAGAN pre-trains): what the loop owns works for any method that hands it networks and a step."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from core.errors import Cancelled, ParamError
from core.events import Reporter
from core.rundir import RunDir
from core.runtime import cpu_threads
from core.training import LoopSettings, Stopped, Trainer, TrainingProcess, Who, train_models
from core.training.checkpoint import load_tensors


class Denoiser(TrainingProcess):
    """x + noise -> x with a two-layer network; one optimiser; a grid of its reconstructions."""
    keep = ("net",)
    divergence_hint = "Lower lr."

    def __init__(self, seed: int = 0, lr: float = 1e-2, data_seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 16))
        for q in self.net.parameters():
            nn.init.normal_(q, 0, 0.3, generator=g)
        self.aux = nn.Linear(1, 1)                    # trained state the final checkpoint need not keep
        self.opt = torch.optim.Adam(list(self.net.parameters()) + list(self.aux.parameters()), lr=lr)
        self.networks, self.optimizers = {"net": self.net, "aux": self.aux}, {"net": self.opt}
        self.rng = torch.Generator().manual_seed(seed + 1)
        self.x = torch.rand(32, 16, generator=torch.Generator().manual_seed(data_seed)) * 2 - 1
        self.lr = lr

    def step(self, monitor: bool):
        idx = torch.randint(len(self.x), (8,), generator=self.rng)
        x = self.x[idx]
        noisy = x + 0.1 * torch.randn(x.shape, generator=self.rng)
        loss = ((self.net(noisy) - x) ** 2).mean() + 0 * self.aux(x[:, :1]).sum()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"recon_loss": float(loss.detach())} if monitor else None

    @torch.no_grad()
    def grid(self):
        out = self.net(self.x[:8]).clamp(-1, 1)
        return ((out + 1) * 127.5).round().to(torch.uint8).view(8, 4, 4, 1).numpy()

    def fingerprint(self):
        return {"lr": self.lr}


def _run(tmp_path, steps=6, seed=0, cancel_at=None, **kw):
    run = tmp_path / "run"

    def cancel(ev):
        if cancel_at and ev["kind"] == "progress" and ev["step"] == cancel_at:
            RunDir(run).request_cancel()

    process = Denoiser(seed, **kw)
    loop = Trainer(process, LoopSettings(steps, monitor_every=1, sample_every=2, checkpoint_every=4),
                   who=Who("toy", "crack", seed=7), reporter=Reporter(run, cancel),
                   checkpoint=tmp_path / "ckpt.safetensors", stage="pretrain toy [crack]")
    return process, loop


def test_monitors_grids_and_a_final_checkpoint_of_any_process(tmp_path):
    process, loop = _run(tmp_path)
    out = loop.run()
    assert out["steps"] == 6 and out["resumed_from"] == 0 and np.isfinite(out["recon_loss"])
    events = RunDir(tmp_path / "run").events()
    monitors = [e for e in events if e["kind"] == "monitor"]
    assert [m["step"] for m in monitors] == [1, 2, 3, 4, 5, 6]
    assert all(m["method"] == "toy" and m["class"] == "crack" and m["seed"] == 7 and m["total"] == 6
               for m in monitors)
    assert {e["stage"] for e in events if e["kind"] == "progress"} == {"pretrain toy [crack]"}
    grids = [e for e in events if e["kind"] == "image"]
    assert [g["step"] for g in grids] == [2, 4, 6] and all(g["path"].startswith("samples/toy/crack/seed7_")
                                                             for g in grids)
    assert all((tmp_path / "run" / g["path"]).is_file() for g in grids)
    saved = load_tensors(tmp_path / "ckpt.safetensors")
    assert {k.split(".")[0] for k in saved} == {"net"}                  # the final checkpoint keeps `keep`


def test_a_cancelled_run_resumes_to_the_same_weights(tmp_path):
    straight, loop = _run(tmp_path / "a", steps=8)
    loop.run()
    _, loop = _run(tmp_path / "b", steps=8, cancel_at=3)
    with pytest.raises(Cancelled):
        loop.run()
    RunDir(tmp_path / "b" / "run").clear_cancel()
    resumed, loop = _run(tmp_path / "b", steps=8, seed=0)
    assert loop.run()["resumed_from"] == 3
    want, got = straight.net.state_dict(), resumed.net.state_dict()
    assert list(want) == list(got)
    for key in want:
        torch.testing.assert_close(want[key], got[key], rtol=0, atol=0, msg=key)
    _, loop = _run(tmp_path / "b", steps=8, lr=5e-3)                     # other settings: trains anew
    assert loop.run()["resumed_from"] == 0


def test_a_loss_that_is_not_finite_stops_with_the_hint(tmp_path):
    process, loop = _run(tmp_path, lr=1e30)
    process.x *= 1e30
    with pytest.raises(ParamError, match=r"toy \[crack\] diverged at step \d+ \(recon_loss is not finite\). Lower lr."):
        loop.run()


def test_models_side_by_side_equal_one_after_another_and_a_failure_stops_the_others(tmp_path):
    def job(seed, fail=False):
        def train(stop: threading.Event):
            process = Denoiser(seed, data_seed=seed)
            if fail:
                process.step = lambda monitor: (_ for _ in ()).throw(RuntimeError("broke"))
            Trainer(process, LoopSettings(200 if not fail else 5), who=Who("toy", str(seed)), stop=stop).run()
            return process.net.state_dict()
        return train

    cpu = torch.device("cpu")
    with cpu_threads(2, cpu):
        together = train_models([job(1), job(2), job(3)], cpu)       # two side by side, then one on both
    with cpu_threads(1, cpu):
        apart = [job(s)(threading.Event()) for s in (1, 2, 3)]
    for a, b in zip(together, apart):
        assert list(a) == list(b)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="broke"):                     # its own error, not "stopped"
        train_models([job(1), job(2, fail=True)], torch.device("cpu"))
    with pytest.raises(Stopped):
        stop = threading.Event()
        stop.set()
        job(4)(stop)


def test_the_first_grid_comes_by_ten_percent_of_the_steps_labelled_one_row_per_class_and_enlarged(tmp_path):
    """Grids every 1,000 steps of 2,000 once meant the first at step 1,000: now one at 10% of the steps. A process
    that names its rows (one per class) gets a labelled grid, each image enlarged to 64 px."""
    from PIL import Image
    from core.training.images import GRID_MIN_SIDE, LABEL_WIDTH
    process = Denoiser(0)
    process.grid_rows = ["normal", "crack"]                 # its 8 images: two rows of four
    run = tmp_path / "run"
    Trainer(process, LoopSettings(300, monitor_every=100, sample_every=200), who=Who("toy", "all", seed=0),
            reporter=Reporter(run)).run()
    grids = [e for e in RunDir(run).events() if e["kind"] == "image"]
    assert [g["step"] for g in grids] == [30, 200, 300] and all(g["rows"] == ["normal", "crack"] for g in grids)
    with Image.open(RunDir(run).resolve(grids[0]["path"])) as im:
        w, h = im.size
    side = GRID_MIN_SIDE                                    # 4 px images enlarged 16x
    assert (w, h) == (LABEL_WIDTH + 4 * (side + 2) + 2, 2 * (side + 2) + 2)
