"""scripts/serve.sh from a fresh shell (nothing activated, no PYTHON or STREAMLIT set) and scripts/app.sh's
install only when requirements.txt changed. Each runs in a copy of the scripts with stand-ins for the venv's
python and streamlit (the real python behind them) and for scripts/install.sh, so nothing is installed."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FRESH = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}          # a new login: no venv on the PATH, nothing set


def _layout(tmp: Path, venv: bool = True) -> Path:
    root = tmp / "repo"
    (root / "scripts").mkdir(parents=True)
    for name in ("serve.sh", "app.sh"):
        shutil.copy(REPO / "scripts" / name, root / "scripts" / name)
    shutil.copytree(REPO / "core", root / "core", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "requirements.txt").write_text("streamlit==1\n")
    (root / "scripts" / "install.sh").write_text(        # what the real one does, minus the download
        "set -e\ncd \"$(dirname \"$0\")/..\"\nmkdir -p .venv/bin\necho install >> installs.log\n" + _venv_script())
    if venv:
        subprocess.run(["bash", "-c", _venv_script()], cwd=root, check=True)
    return root


def _venv_script() -> str:
    return (f"mkdir -p .venv/bin\nprintf '#!/bin/sh\\nexec {sys.executable} \"$@\"\\n' > .venv/bin/python\n"
            "printf '#!/bin/sh\\necho streamlit \"$@\"\\n' > .venv/bin/streamlit\nchmod +x .venv/bin/*\n")


def test_serve_sh_starts_from_a_fresh_shell_with_the_projects_venv_and_takes_a_port(tmp_path):
    root = _layout(tmp_path)
    out = subprocess.run(["bash", "scripts/serve.sh", "--port", "8600", "--server.headless=true"], cwd=root,
                         env=FRESH, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("streamlit run app.py --server.maxUploadSize=")
    assert "--server.port=8600 --server.headless=true" in out.stdout


def test_serve_sh_without_an_install_says_how_to_install_instead_of_a_traceback(tmp_path):
    root = _layout(tmp_path, venv=False)
    out = subprocess.run(["bash", "scripts/serve.sh"], cwd=root, env=dict(FRESH, PATH="/nonexistent:/bin"),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "bash scripts/app.sh" in out.stderr


def test_app_sh_installs_only_when_requirements_txt_changed(tmp_path):
    root = _layout(tmp_path, venv=False)
    run = lambda: subprocess.run(["bash", "scripts/app.sh", "--port", "8601"], cwd=root, env=FRESH,  # noqa: E731
                                 capture_output=True, text=True, timeout=120)
    first, second = run(), run()
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert (root / "installs.log").read_text().count("install") == 1
    assert "unchanged" in second.stdout and "--server.port=8601" in second.stdout
    (root / "requirements.txt").write_text("streamlit==2\n")
    assert run().returncode == 0
    assert (root / "installs.log").read_text().count("install") == 2
