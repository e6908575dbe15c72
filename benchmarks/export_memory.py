"""Export for real use: seconds and peak RSS of exporting a finished magnetic_tile run, and peak RSS of serving a
large zip the way the Export page does.

    .venv/bin/python -m core run --data ../shared/datasets/magnetic_tile --methods smote --seeds 0 --ratio 0.1 \
        --preset quick --image-size 32 --set classifier.epochs=2 --threads 1 --device cpu --no-quality \
        --out benchmarks/out/mt_smote                                   # the run (about 3 minutes on 2 cores)
    .venv/bin/python benchmarks/export_memory.py [--run benchmarks/out/mt_smote] [--serve-gib 1] [--write]

Export: `core.views.export.export_zip` of the run with smote, every real image (1344 original JPEGs read in place from
../shared/datasets/magnetic_tile) and the top-up, in the flat and split layouts; each in a fresh process, with
`import core.views.export` alone as the floor. Seconds are wall time of the call; peak RSS is the process's
ru_maxrss, so it includes Python, NumPy and (when the saved generator samples what the run lacks) torch.

Serving: a sparse file of --serve-gib GiB stands for the zip. For a zip up to 50 MB the page hands Streamlit a
callable (`ui.common.file_on_click`; a larger zip goes through the app's download route, core.serving, measured by
benchmarks/export_serving.py); on a click Streamlit runs it (`MediaFileManager.execute_deferred`), keeps the
bytes in its `MemoryMediaFileStorage` and serves them from its Starlette media route under uvicorn. Measured
here with those same Streamlit objects in one server process and a separate curl process downloading the file
to /dev/null: peak RSS of the server after a page render (nothing read), after the click, and after the
download. For comparison, what the page did before (the bytes read at each render and stored for the session):
two renders before the old one is dropped. Each in a fresh process.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child_export(run: str, layout: str, out: str) -> dict:
    t0 = time.perf_counter()
    from core.views.export import export_zip
    imported = time.perf_counter()
    if layout == "none":
        return {"seconds": 0.0, "peak_rss_mb": _rss_mb(), "import_s": imported - t0}
    if layout == "none+sampler":       # what loading a saved generator costs: torch and the method registry
        from core.methods import get_method
        get_method("smote")
        return {"seconds": 0.0, "peak_rss_mb": _rss_mb()}
    r = export_zip(run, "smote", out, layout=layout)
    seconds = time.perf_counter() - imported
    totals = {k: sum(v[k] for v in r.counts.values()) for k in next(iter(r.counts.values()))}
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(_rss_mb(), 1), "totals": totals,
            "zip_mb": round(Path(out).stat().st_size / 2**20, 1), "notes": r.notes}


def child_serve(path: str, mode: str) -> dict:
    """One server process: Streamlit's media storage and route under uvicorn, the page's mechanism (`deferred`)
    or the old one (`eager`: read at each render)."""
    import uvicorn
    from starlette.applications import Starlette
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.web.server.starlette.starlette_gzip_middleware import SelectiveGZipMiddleware
    from streamlit.web.server.starlette.starlette_routes import create_media_routes

    from ui.common import file_on_click             # what app_pages/export.py hands the download button

    storage = MemoryMediaFileStorage("/media")
    mgr = MediaFileManager(storage)
    out = {"after_imports_mb": round(_rss_mb(), 1)}
    if mode == "deferred":
        fid = mgr.add_deferred(file_on_click(path), "application/zip", "export.download", file_name="b.zip",
                               element_id="e_download")
        out["after_render_mb"] = round(_rss_mb(), 1)
        url = mgr.execute_deferred(fid)                                   # the click
    else:
        for _ in range(2):                                                # two renders of the old page
            data = Path(path).read_bytes()
            url = mgr.add(data, "application/zip", "export.download", file_name="b.zip",
                          is_for_static_download=True)
            del data
        out["after_render_mb"] = round(_rss_mb(), 1)
    out["after_click_mb"] = round(_rss_mb(), 1)
    out["held_after_click_mb"] = round(_current_mb(), 1)
    # as `streamlit run` serves it: the media route behind Streamlit's gzip middleware, uvicorn's defaults
    app = SelectiveGZipMiddleware(Starlette(routes=create_media_routes(storage, None)))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    t0 = time.perf_counter()
    got = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", "-H",
                          "Accept-Encoding: gzip, deflate, br", f"http://127.0.0.1:{port}{url}"],
                         capture_output=True, text=True, check=True).stdout
    out["download_s"] = round(time.perf_counter() - t0, 2)
    out["downloaded_bytes"] = int(got)
    server.should_exit = True
    thread.join(timeout=10)
    out["peak_rss_mb"] = round(_rss_mb(), 1)
    return out


def _shown(path: str) -> str:
    try:
        return Path(path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path


def _child(*args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env,
                       cwd=ROOT)
    if r.returncode:
        raise SystemExit(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=str(OUT / "mt_smote"))
    ap.add_argument("--serve-gib", type=float, default=1.0)
    ap.add_argument("--write", action="store_true", help="write the section into benchmarks/RESULTS.md")
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        print(json.dumps(child_export(*rest) if kind == "export" else child_serve(*rest)))
        return
    if not (Path(args.run) / "split.json").exists():
        raise SystemExit(f"no finished run at {args.run}: make it with the command in this file's docstring")
    from benchmarks._results import machine, write_section
    load = os.getloadavg()[0]
    floor = _child("export", args.run, "none", "")
    floor_torch = _child("export", args.run, "none+sampler", "")
    exports = {layout: _child("export", args.run, layout, str(OUT / f"export_{layout}.zip"))
               for layout in ("flat", "split")}
    big = OUT / "serve_test.zip"
    with open(big, "wb") as fh:                 # sparse: the content does not matter, its size does
        fh.truncate(int(args.serve_gib * 2**30))
    try:
        serve = {mode: _child("serve", str(big), mode) for mode in ("deferred", "eager")}
    finally:
        big.unlink()
    load_after = os.getloadavg()[0]
    lines = ["## Export for real use: magnetic_tile with smote, and serving a large zip (benchmarks/export_memory.py)",
             "", f"Machine: {machine()}; 2 CPU cores shared with other engineers' work (contended): 1-minute load "
             f"average {load:.1f} before and {load_after:.1f} after. Measured {time.strftime('%Y-%m-%d %H:%M')} UTC.",
             "", f"Run: {_shown(args.run)} (smote, seed 0, ratio 0.1, 32 px, quick preset). Export of every real "
             "image (the "
             "original files, read in place) + the smote top-up; `import core.views.export` alone: "
             f"{floor['peak_rss_mb']:.0f} MB peak RSS, with the method registry and torch (loaded when the saved "
             f"generator samples what the run lacks): {floor_torch['peak_rss_mb']:.0f} MB.", "",
             "| layout | real train / test / held back | synthetic (run / sampled now) | zip | seconds | peak RSS |",
             "|---|---|---|---|---|---|"]
    for layout, e in exports.items():
        t = e["totals"]
        lines.append(f"| {layout} | {t['train']} / {t['test']} / {t['held_back']} | {t['synthetic']} / {t['sampled']} "
                     f"| {e['zip_mb']} MB | {e['seconds']} | {e['peak_rss_mb']:.0f} MB |")
    lines += ["", f"Serving a {args.serve_gib:g} GiB zip (server process, MB: peak RSS so far at each step, and the "
              "RSS held after the click; curl downloads it from Streamlit's media route and gzip middleware under "
              "uvicorn, as `streamlit run` serves it):", "",
              "| page mechanism | after imports | page rendered | clicked | held after the click "
              "| peak (download done) "
              "| download |", "|---|---|---|---|---|---|---|"]
    names = {"deferred": "callable (the page, zips up to 50 MB: read on click)",
             "eager": "bytes read at each render (before)"}
    for mode, s in serve.items():
        lines.append(f"| {names[mode]} | {s['after_imports_mb']:.0f} | {s['after_render_mb']:.0f} | "
                     f"{s['after_click_mb']:.0f} | {s['held_after_click_mb']:.0f} | {s['peak_rss_mb']:.0f} | "
                     f"{s['download_s']} s, "
                     f"{s['downloaded_bytes'] / 2**30:.2f} GiB |")
    d, e = serve["deferred"], serve["eager"]
    flat, split = exports["flat"], exports["split"]
    lines += ["", f"The export copies the files one by one ({split['peak_rss_mb']:.0f} MB for split). Flat balances "
              "against the largest exported class, its test images included, so a class with fewer test images "
              f"needs more synthetic images than the run made: those {flat['totals']['sampled']} are sampled from "
              f"the saved smote, which loads torch ({floor_torch['peak_rss_mb']:.0f} MB of the "
              f"{flat['peak_rss_mb']:.0f} MB) and takes {flat['seconds'] - split['seconds']:.1f} s more.",
              "", f"The page reads nothing at render with the callable ({d['after_render_mb']:.0f} MB) and one copy "
              f"on the click (held: {d['held_after_click_mb']:.0f} MB); reading at each render, as before, held "
              f"{e['after_render_mb']:.0f} MB after two renders, before any click. The download itself peaks at "
              f"{d['peak_rss_mb']:.0f} MB either way, {d['peak_rss_mb'] - d['held_after_click_mb']:.0f} MB above "
              "the stored copy: Streamlit 1.67 serves every download from memory (MemoryMediaFileStorage) and the "
              "rest arises while uvicorn sends the body. Its static file serving, which streams from disk, refuses "
              "files over 200 MB, so the Export page now keeps st.download_button for zips up to 50 MB only and "
              "links a larger one to the app's own download route (core.serving), measured in the export_serving "
              "section (benchmarks/export_serving.py)."]
    text = "\n".join(lines)
    print(text)
    print(json.dumps({"floor": floor, "exports": exports, "serve": serve}, indent=1))
    if args.write:
        write_section("export_real_use", text)


if __name__ == "__main__":
    main()
