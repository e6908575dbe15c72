"""The Docker image is the README's own commands (Docker cannot run here, so CI's run of those commands is what
tests the image): it installs with scripts/install.sh, which scripts/app.sh (the README's start command) and
scripts/install_test_deps.sh (the README's test command) run too, and starts with scripts/app.sh."""
from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.M)
            if not m.group(0).lstrip().startswith("#")]


def test_the_image_installs_and_starts_with_the_readmes_commands():
    steps = instructions()
    runs = [arg for op, arg in steps if op == "RUN"]
    assert "bash scripts/install.sh" in runs
    cmd = json.loads(next(arg for op, arg in steps if op == "CMD"))
    assert cmd[:2] == ["bash", "scripts/app.sh"] and "--server.address=0.0.0.0" in cmd
    readme = (REPO / "README.md").read_text()
    assert "    bash scripts/app.sh\n" in readme
    assert "bash scripts/install_test_deps.sh && .venv/bin/python -m pytest" in readme
    for script in ("app.sh", "install_test_deps.sh"):        # one install, shared by the app, the tests, the image
        assert "bash scripts/install.sh" in (REPO / "scripts" / script).read_text(), script
    assert ".venv/bin/pip install -q -r requirements.txt" in (REPO / "scripts" / "install.sh").read_text()
    assert ".venv" in (REPO / ".dockerignore").read_text().split()     # the image's own venv is never overwritten


def test_a_build_argument_gives_the_cuda_base_and_the_readme_has_a_run_line_for_each():
    steps = instructions()
    assert ("ARG", "BASE=python:3.11-slim") in steps and ("FROM", "${BASE}") in steps
    readme = (REPO / "README.md").read_text()
    assert re.search(r"docker build --build-arg BASE=nvidia/cuda:\S+ -t defectaug:cuda \.", readme)
    assert re.search(r"docker run -p 8501:8501 .*defectaug\n", readme)
    assert re.search(r"docker run --gpus all -p 8501:8501 .*defectaug:cuda\n", readme)
    volumes = [arg for op, arg in steps if op == "VOLUME"]
    assert volumes and "/app/workspaces" in volumes[0]
