"""Every available method on magnetic_tile with the quality measures and the quality gate, beside its F1 gain.

    .venv/bin/python benchmarks/quality_protocol.py                      # 32 px, seeds 0,1,2, every method (~1 h, 2 cores)
    .venv/bin/python benchmarks/quality_protocol.py --methods smote,dcgan --seeds 0 --no-write

One run of the experiment's plan (`run_in_processes`, 2 single-thread processes) with `quality_gate`: each
method is trained as it is and on what its quality gate keeps (`<method>+gate`). The table (RESULTS.md, section
quality_protocol) gives per method: macro F1 and the gain over the strongest baseline with its verdict, with
and without the gate; the images dropped by the gate; FD-cls, KD-cls, SSIM diversity (synthetic vs real),
precision / recall of the generated distribution, the train-on-synthetic macro F1 and the near-copy share (all
classes pooled, means over seeds); and what the measures cost: the quality task's seconds against the method's
own (fit + its classifier's training).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, write_section  # noqa: E402
from core.experiment import run_in_processes  # noqa: E402
from core.methods import available_methods  # noqa: E402
from core.rundir import RunDir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "magnetic_tile"))
    ap.add_argument("--methods", default=",".join(m.name for m in available_methods()))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "quality_protocol"))
    ap.add_argument("--set", action="append", default=[], metavar="METHOD.PARAM=VALUE")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    methods = [m for m in a.methods.split(",") if m]
    seeds = [int(s) for s in a.seeds.split(",")]
    overrides: dict = {}
    for item in a.set:
        key, _, value = item.partition("=")
        owner, _, name = key.partition(".")
        overrides.setdefault(owner, {})[name] = value
    config = dict(data=a.data, methods=methods, seeds=seeds, ratio=0.1, image_size=a.image_size, test_per_class=20,
                  quality=True, quality_gate=True, save_images=True, overrides=overrides)
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    threads = 1 if a.procs > 1 else (os.cpu_count() or 1)
    m = run_in_processes(config, out, a.procs, threads,
                         on_chain=lambda ids: print(f"[{time.strftime('%H:%M:%S')}] {', '.join(ids)} done", flush=True))
    body = table(m, RunDir(out), a, seeds, (time.time() - t0) / 60)
    print("\n" + body)
    if not a.no_write:
        write_section("quality_protocol", body)


def _f(v, fmt="{:.3f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) and np.isfinite(v) else ""


def table(m: dict, rd: RunDir, a, seeds: list[int], minutes: float) -> str:
    strongest = m["strongest_baseline"]
    p = m["protocol"]
    lines = [
        "## Generative quality on magnetic_tile, with and without the quality gate (`benchmarks/quality_protocol.py`)",
        "",
        f"Machine: {machine()}.",
        f"Protocol: ratio {p['ratio']}, seeds {seeds}, {p['image_size']} px, quick presets, small CNN {p['epochs']} "
        f"epochs; strongest baseline **{strongest}** ({m['baselines'][strongest]['f1_macro']:.3f}). Wall time "
        f"{minutes:.1f} min, {a.procs} processes. Quality: the real training images of each defect class against "
        "its synthetic images on the features of the seed's class-weighted baseline (FD-cls / KD-cls; no Inception "
        "file configured, so no FID), all classes pooled, means over seeds. The gate drops synthetic images that "
        "classifier puts in another class with confidence >= 0.9 and, for generators, near-copies.",
        "",
        "| method | macro F1 | gain (verdict) | + gate: F1 | gain (verdict) | gate dropped | FD-cls | KD-cls | "
        "SSIM synth / real | precision | recall | CAS F1 | near-copies | quality s / method s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, block in m["methods"].items():
        if block.get("gated_from"):
            continue
        q = block.get("quality") or {}
        o = q.get("overall", {})
        per = q.get("per_class", {})
        ssim_s = np.nanmean([b["ssim_synthetic"] for b in per.values()]) if per else float("nan")
        ssim_r = np.nanmean([b["ssim_real"] for b in per.values()]) if per else float("nan")
        g = m["methods"].get(f"{name}+gate")
        v = block["verdict"]
        cell = f"{v['gain']:+.3f} ({v['label']})"
        gcell = f"{g['verdict']['gain']:+.3f} ({g['verdict']['label']})" if g else ""
        q_seconds = np.mean([(rd.quality(name, s) or {}).get("seconds", np.nan) for s in seeds])
        method_seconds = np.mean([(rd.fit(name, s) or {}).get("fit_seconds", np.nan)
                                  + block["seeds"][str(s)]["seconds"] for s in seeds])
        dropped = sum(q.get("gate", {}).get("dropped", {}).values())
        lines.append(
            f"| {name} | {block['f1_macro']:.3f} ± {block['std']['f1_macro']:.3f} | {cell} | "
            f"{_f(g['f1_macro']) if g else ''} | {gcell} | {dropped} of {sum(p['needed'].values()) * len(seeds)} | "
            f"{_f(o.get('fd_cls'), '{:.2f}')} | {_f(o.get('kd_cls'), '{:.4f}')} | {_f(ssim_s, '{:.2f}')} / "
            f"{_f(ssim_r, '{:.2f}')} | {_f(o.get('precision'))} | {_f(o.get('recall'))} | "
            f"{_f((q.get('cas') or {}).get('f1_macro'))} | {_f(o.get('near_copies'))} | "
            f"{q_seconds:.1f} / {method_seconds:.0f} ({100 * q_seconds / method_seconds:.0f}%) |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
