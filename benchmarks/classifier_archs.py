"""The classifier architectures (issue 18): training-step time per arch, and resnet18 from scratch beside the
small CNN on magnetic_tile.

    .venv/bin/python benchmarks/classifier_archs.py steps                 # ms per training step, 64 px, 2 threads
    .venv/bin/python benchmarks/classifier_archs.py tile                  # magnetic_tile, ratio 0.1, 3 seeds
    .venv/bin/python benchmarks/classifier_archs.py report                # the RESULTS.md section from both

`steps` trains every arch of `core.classifier.ARCHS` from scratch on random 64 px images (grey, batch 64 as the
quick preset, and batch 4 as the CycleGAN paper's preset) in one process of `--threads` torch threads and
prints the median ms per step of `--steps` steps after two warm-up steps (`clf.train`'s own loop is not used:
it would time data setup and the weight average too; the step here is forward, loss, backward, AdamW).

`tile` runs the experiment's plan (`core.experiment.run_in_processes`, the same code as `python -m core run`)
on magnetic_tile with the equal-steps baseline and smote for each of `--models` (arch:epochs), 32 px like the
seed protocol, in `--procs` single-thread processes. The results go to benchmarks/out/classifier_archs/*.json;
`report` writes them into benchmarks/RESULTS.md (section classifier_archs).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, write_section  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "classifier_archs"


def time_steps(threads: int, steps: int, size: int, batches: list[int]) -> dict:
    import torch
    from core import classifier as clf
    torch.set_num_threads(threads)
    rows = []
    for arch in clf.ARCHS:
        for bs in batches:
            p = clf.ClassifierParams(arch=arch, batch_size=bs, amp="off")
            model = clf.make_model(p, 1, 6, seed=0).to(memory_format=torch.channels_last).train()
            opt = torch.optim.AdamW(model.parameters(), lr=p.lr)
            g = torch.Generator().manual_seed(0)
            x = (torch.rand(bs, 1, size, size, generator=g) * 2 - 1).contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, 6, (bs,), generator=g)
            times = []
            for i in range(steps + 2):
                t0 = time.perf_counter()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if i >= 2:
                    times.append(time.perf_counter() - t0)
            params = sum(t.numel() for t in model.parameters())
            row = {"arch": arch, "batch": bs, "ms": round(1000 * statistics.median(times), 1),
                   "ms_min": round(1000 * min(times), 1), "params_m": round(params / 1e6, 2),
                   "weights_mb": round(sum(t.numel() * t.element_size() for t in model.state_dict().values())
                                       / 2**20, 2)}
            print(row, flush=True)
            rows.append(row)
    return {"machine": machine(), "threads": threads, "steps": steps, "size": size, "rows": rows,
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": os.getloadavg()}


def run_tile(data: str, models: list[str], seeds: list[int], size: int, procs: int) -> dict:
    """Each model's results are added to tile.json as soon as they are in (a later call adds or replaces)."""
    from core.experiment import run_in_processes
    path = OUT / "tile.json"
    out: dict = json.loads(path.read_text()) if path.exists() else {}
    out.update(machine=machine(), seeds=seeds, size=size, procs=procs)
    out.setdefault("models", {})
    for spec in models:
        arch, _, epochs = spec.partition(":")
        name = f"{arch}_e{epochs}"
        folder = OUT / "tile" / name
        shutil.rmtree(folder, ignore_errors=True)          # a fresh measurement, never a resumed one
        cfg = dict(data=data, methods=["smote"], seeds=seeds, ratio=0.1, image_size=size, test_per_class=20,
                   baselines=["equal_steps"], save_images=False, quality=False, device="cpu",
                   overrides={"classifier": {"arch": arch, "epochs": int(epochs)}})
        t0, cpu0 = time.time(), _cpu_seconds()
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        m = run_in_processes(cfg, folder, procs, 1)
        wall, cpu = time.time() - t0, _cpu_seconds() - cpu0
        rows = {}
        for label, block in (("baseline:equal_steps", m["baselines"]["equal_steps"]), ("smote", m["methods"]["smote"])):
            rows[label] = {"f1": block["f1_macro"], "f1_sd": block["std"]["f1_macro"],
                           "seeds": [round(v["f1_macro"], 3) for v in block["seeds"].values()],
                           "ci": block["f1_ci"], "ms_step": round(block["seconds_per_step"] * 1000, 1),
                           "recall": block["recall_macro"], "precision": block["precision_macro"]}
        verdict = m["methods"]["smote"]["verdict"]
        sizes = sorted(p.stat().st_size for p in (folder / "classifiers").glob("*.safetensors"))
        out["models"][name] = {"arch": arch, "epochs": int(epochs), "rows": rows, "wall_s": round(wall, 1),
                               "cpu_s": round(cpu, 1), "steps": m["protocol"]["steps_balanced"],
                               "verdict": f"{verdict['label']} ({verdict['gain']:+.3f}, "
                                          f"{verdict['ci'][0]:+.3f} to {verdict['ci'][1]:+.3f})",
                               "classifier_file_kb": round(sizes[-1] / 1024, 1) if sizes else None,
                               "run_folder_mb": round(_folder_bytes(folder) / 2**20, 2),
                               "protocol": {k: m["protocol"][k] for k in ("train_counts", "test_counts")}}
        out["models"][name]["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        out["when"] = out["models"][name]["when"]
        print(json.dumps(out["models"][name]), flush=True)
        path.write_text(json.dumps(out, indent=1))      # the run folders stay for inspection (not committed)
    return out


def _cpu_seconds() -> float:
    import resource
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def report() -> str:
    lines = ["## Classifier architectures: step time, and resnet18 from scratch on magnetic_tile "
             "(`benchmarks/classifier_archs.py`, issue 18)", ""]
    steps_file, tile_file = OUT / "steps.json", OUT / "tile.json"
    if steps_file.exists():
        s = json.loads(steps_file.read_text())
        batches = sorted({r["batch"] for r in s["rows"]})
        lines += [f"Machine: {s['machine']}. Measured {s['when']}, load average at the end "
                  f"{', '.join(f'{v:.1f}' for v in s['load'])}: **this 2-core machine was shared with five other "
                  "engineers' sessions, so the times are contended** (upper bounds; compare archs with each other, "
                  "not with other sections).",
                  f"One process of {s['threads']} torch threads, {s['size']} px grey images, from scratch, float32; "
                  f"median of {s['steps']} steps after 2 warm-up steps (forward, loss, backward, AdamW).", "",
                  "| arch | parameters | weights file | " + " | ".join(f"ms/step, batch {b}: median (fastest)"
                                                                     for b in batches) + " |",
                  "|---|---|---|" + "---|" * len(batches)]
        for arch in dict.fromkeys(r["arch"] for r in s["rows"]):
            rs = {r["batch"]: r for r in s["rows"] if r["arch"] == arch}
            first = next(iter(rs.values()))
            lines.append(f"| {arch} | {first['params_m']} M | {first['weights_mb']} MB | "
                         + " | ".join(f"{rs[b]['ms']:.0f} ({rs[b]['ms_min']:.0f})" for b in batches) + " |")
        lines.append("")
    if tile_file.exists():
        t = json.loads(tile_file.read_text())
        any_model = next(iter(t["models"].values()))
        lines += [f"magnetic_tile, ratio 0.1, seeds {','.join(map(str, t['seeds']))}, {t['size']} px (as the seed "
                  "protocol), the equal-steps baseline and smote, both from the same initial weights per seed; "
                  f"quick settings (batch 64, AdamW lr 3e-3, cosine, EMA), {t['procs']} single-thread processes. "
                  f"Test set {any_model['protocol']['test_counts']}; training counts "
                  f"{any_model['protocol']['train_counts']}. Measured {t['when']} on the same shared machine.", "",
                  "| classifier | epochs (steps) | model | macro F1 (mean ± sd) | per seed | 95% CI | ms/step | "
                  "smote's verdict vs equal_steps | wall / CPU minutes | one weights file | run folder |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in t["models"].items():
            for label, row in r["rows"].items():
                lines.append(f"| {r['arch']} | {r['epochs']} ({r['steps']}) | {label} | **{row['f1']:.3f}** ± "
                             f"{row['f1_sd']:.3f} | {', '.join(f'{v:.3f}' for v in row['seeds'])} | "
                             f"[{row['ci'][0]:.3f}, {row['ci'][1]:.3f}] | {row['ms_step']} | "
                             + (f"{r['verdict']} | {r['wall_s'] / 60:.1f} / {r['cpu_s'] / 60:.1f} | "
                                f"{r['classifier_file_kb'] / 1024:.2f} MB | {r['run_folder_mb']:.1f} MB |" if label == "smote"
                                else "| | | |"))
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["steps", "tile", "report"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--size", type=int, default=None, help="px (steps: 64, tile: 32)")
    ap.add_argument("--batches", default="64,4")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "magnetic_tile"))
    ap.add_argument("--models", default="resnet18:6,small_cnn:6,small_cnn:35",
                    help="arch:epochs, comma-separated")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="report: print only")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if a.part == "steps":
        got = time_steps(a.threads, a.steps, a.size or 64, [int(b) for b in a.batches.split(",")])
        (OUT / "steps.json").write_text(json.dumps(got, indent=1))
    elif a.part == "tile":
        run_tile(a.data, a.models.split(","), [int(s) for s in a.seeds.split(",")], a.size or 32, a.procs)
    body = report()
    print(body)
    if a.part == "report" and not a.no_write:
        write_section("classifier_archs", body)


if __name__ == "__main__":
    main()
