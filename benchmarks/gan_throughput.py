"""Images per second of one D+G step of `dcgan`: our training loop (core.training.Trainer running dcgan's
step, core/methods/gan/gan.py) against a minimal
plain-PyTorch loop of the same networks, in the same process, on the same data.

    .venv/bin/python benchmarks/gan_throughput.py                    # 64 and 128 px, quick-preset widths
    .venv/bin/python benchmarks/gan_throughput.py --width 64 --batch 64 --write   # + RESULTS.md

Both loops keep the training images on the device as one tensor and draw random batches from it; the
plain loop is the PyTorch DCGAN example (BCE, fake batch reused for the G update, fp32). Ours runs
`Trainer.run()` as the method does (monitors every `monitor_every` steps, cancellation checks, no
DiffAugment, no sample grids since there is no run directory); on CUDA it adds bf16 autocast,
channels_last and fused Adam. Rounds alternate ours / plain and the median is kept, so a busy shared
machine slows both alike. `--write` puts the table in benchmarks/RESULTS.md (section gan_throughput).
Exit status 1 when ours is below 0.95x the plain loop at any size.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks._results import machine, write_section  # noqa: E402
from core.methods import get_method  # noqa: E402
from core.methods.gan.gan import AdversarialStep  # noqa: E402
from core.runtime import Placement  # noqa: E402
from core.training import LoopSettings, Trainer, Who  # noqa: E402
from models.dcgan import build_dcgan  # noqa: E402

def nets(size: int, width: int, latent: int, seed: int = 0):
    return build_dcgan(latent, 1, size, width, width, generator=torch.Generator().manual_seed(seed))


def plain_loop(size, width, batch, latent, data, device):
    """The PyTorch DCGAN example's loop on our networks: returns `run(steps)`."""
    G, D = nets(size, width, latent)
    G, D = G.to(device), D.to(device)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ones = torch.ones(batch, device=device)
    zeros = torch.zeros(batch, device=device)

    def run(steps: int) -> None:
        for _ in range(steps):
            real = data[torch.randint(len(data), (batch,), device=device)]
            D.zero_grad()
            err_real = F.binary_cross_entropy_with_logits(D(real)[0], ones)
            fake = G(torch.randn(batch, latent, device=device))
            err_fake = F.binary_cross_entropy_with_logits(D(fake.detach())[0], zeros)
            (err_real + err_fake).backward()
            opt_d.step()
            G.zero_grad()
            err_g = F.binary_cross_entropy_with_logits(D(fake)[0], ones)
            err_g.backward()
            opt_g.step()
    return run


def our_loop(size, width, batch, latent, images, steps, device):
    """The loop exactly as the dcgan sampler runs it: a fresh `Trainer` per call on the same training state
    (each call trains `steps` more)."""
    params = get_method("dcgan").make_params("quick", {
        "g_width": width, "d_width": width, "batch_size": batch, "latent_dim": latent, "diffaugment": "none",
        "loss": "non_saturating", "hflip": False, "steps": steps, "sample_every": 0})
    who = Who("dcgan", "bench", 0)
    process = AdversarialStep(*nets(size, width, latent), params, images, placement=Placement.for_device(device),
                              seed=0, who=who)
    return lambda _steps: Trainer(process, LoopSettings.from_params(params, process.total), who=who).run()


def timed(fn, steps, device) -> float:
    sync(device)
    t = time.perf_counter()
    fn(steps)
    sync(device)
    return (time.perf_counter() - t) / steps


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--width", type=int, default=32, help="g_width = d_width (quick preset: 32; DCGAN: 64)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--latent", type=int, default=100)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--write", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    load_before = os.getloadavg()[0]
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (64, size, size, 1), dtype=np.uint8)
        data = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1).contiguous()
        ours_fn = our_loop(size, args.width, args.batch, args.latent, images, args.steps, device)
        plain_fn = plain_loop(size, args.width, args.batch, args.latent, data, device)
        timed(ours_fn, args.steps, device)                      # warm-up of both
        timed(plain_fn, args.steps, device)
        ours, plain, ratios = [], [], []
        for r in range(args.rounds):                           # alternate, so load hits both alike
            first, second = (ours_fn, plain_fn) if r % 2 == 0 else (plain_fn, ours_fn)
            a, b = timed(first, args.steps, device), timed(second, args.steps, device)
            o, p = (a, b) if r % 2 == 0 else (b, a)
            ours.append(o)
            plain.append(p)
            ratios.append(p / o)
            print(f"{size}px round {r}: ours {args.batch / o:.1f} img/s, plain {args.batch / p:.1f} img/s, "
                  f"ratio {p / o:.2f}", flush=True)
        rows.append((size, args.batch / statistics.median(ours), args.batch / statistics.median(plain),
                     statistics.median(ratios)))
    lines = ["## GAN family: training-loop throughput (benchmarks/gan_throughput.py)", "",
             f"Machine: {machine()}; device {device}; 1-minute load average {load_before:.1f} before and "
             f"{os.getloadavg()[0]:.1f} after (the machine is shared: other work runs on the same cores).", "",
             f"One D+G step of dcgan (g_width = d_width = {args.width}, batch {args.batch}, latent {args.latent}, "
             f"grayscale, non-saturating loss, no DiffAugment): `core.training.Trainer` running dcgan's step as the method does "
             f"(monitors every 10 steps, cancellation checks) against the PyTorch DCGAN example's loop on the "
             f"same networks and data, in one process; {args.rounds} alternating rounds of {args.steps} steps "
             f"each; medians of img/s and of the per-round ratio. Images/s counts the real images per step.", "",
             "| image size | ours (img/s) | plain PyTorch (img/s) | ours / plain (median of rounds) |",
             "|---|---|---|---|"]
    lines += [f"| {s} px | {o:.1f} | {p:.1f} | {r:.2f}x |" for s, o, p, r in rows]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section("gan_throughput", text)
        print("written to benchmarks/RESULTS.md (section gan_throughput)")
    return 0 if all(r >= 0.95 for *_, r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
