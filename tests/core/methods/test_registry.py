"""The registry: lazy entries, methods from outside the catalog (DEFECTAUG_PLUGINS), unavailable methods
listed with their reason. The toy methods live in modules the `toy_plugins` fixture writes to a temporary
folder (tests/support/toy_plugins.py): no file of the project changes, yet they show in `python -m core
methods`, the Synthesize form (tests/app/test_pages.py) and the common checks."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def test_plugin_methods_are_listed_by_the_cli_with_unavailable_ones_and_their_reason(toy_plugins):
    r = subprocess.run([sys.executable, "-m", "core", "methods"], capture_output=True, text=True, cwd=REPO,
                       env=toy_plugins, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines()}
    assert "toy_mean" in rows and "a test's own method" in rows["toy_mean"]
    assert "UNAVAILABLE: needs the Python package defectaug_surely_missing_package" in rows["toy_needs_extra"]
    assert "pip install defectaug_surely_missing_package" in rows["toy_needs_extra"]
    broken = [line for line in r.stdout.splitlines() if line.startswith("plugin broken_methods")]
    assert broken and "ModuleNotFoundError" in broken[0]
    assert "smote" in rows and "dcgan" in rows                    # the rest still loads


def test_plugin_methods_go_through_the_common_checks(toy_plugins):
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "toy",
                        "tests/core/methods/test_common_checks.py"], capture_output=True, text=True, cwd=REPO,
                       env=toy_plugins, timeout=600)
    tail = r.stdout.strip().splitlines()[-1]
    assert r.returncode == 0, r.stdout[-3000:]
    # toy_mean runs the 8 checks (count/shape x2 channels, seeds, copies, checkpoint, one image, provenance,
    # presets); toy_needs_extra only the presets check, its runnable checks are skipped with the reason
    assert "9 passed" in tail and "7 skipped" in tail, tail


def test_an_unavailable_method_is_refused_before_a_job_with_its_reason(toy_plugins, tmp_path):
    from core.errors import ParamError
    from core.experiment import ExperimentConfig
    from core.methods import get_method
    assert get_method("toy_needs_extra").unavailable_reason().startswith("needs the Python package")
    with pytest.raises(ParamError, match="toy_needs_extra cannot run on this server: needs the Python package"):
        ExperimentConfig.from_dict({"data": str(tmp_path), "methods": ["toy_needs_extra"]})


def test_a_catalog_module_that_fails_to_import_disables_only_its_methods(monkeypatch):
    from core.methods import _catalog, registry
    monkeypatch.setitem(_catalog.CATALOG, "ghost", ("core.methods.no_such_module", "diffusion"))
    try:
        spec = registry.get_method("ghost")
        assert not spec.available and "core.methods.no_such_module could not be imported" in spec.unavailable_reason()
        assert "ghost" in registry.method_names() and registry.get_method("smote").available
    finally:
        registry._REGISTRY.pop("ghost", None)


def test_needs_are_declared_on_the_spec(monkeypatch, tmp_path):
    from core.methods import MethodSpec, NoParams, Sampler
    gpu = MethodSpec("x", "diffusion", "-", "-", NoParams, Sampler, needs_gpu=True)
    import torch
    assert (gpu.unavailable_reason() is None) == torch.cuda.is_available()
    weights = MethodSpec("y", "diffusion", "-", "-", NoParams, Sampler, weights_env="DEFECTAUG_TEST_WEIGHTS")
    monkeypatch.delenv("DEFECTAUG_TEST_WEIGHTS", raising=False)
    assert "set DEFECTAUG_TEST_WEIGHTS" in weights.unavailable_reason()
    monkeypatch.setenv("DEFECTAUG_TEST_WEIGHTS", str(tmp_path / "nope"))
    assert "does not exist" in weights.unavailable_reason()
    monkeypatch.setenv("DEFECTAUG_TEST_WEIGHTS", str(tmp_path))
    assert weights.available
