"""The registry: lazy entries, methods from outside the catalog (DEFECTAUG_PLUGINS), unavailable methods
listed with their reason. The toy methods live in modules the `toy_plugins` fixture writes to a temporary
folder (tests/support/toy_plugins.py): no file of the project changes, yet they show in `python -m core
methods`, the Synthesize form (tests/app/test_pages.py) and the common checks."""
from __future__ import annotations

import json
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


def _registered_names() -> set[str]:
    """Every method name a module under core/methods registers (`register(Spec(name="..."))`), read from the
    source, so a module that cannot be imported here still counts."""
    import ast
    names = set()
    for path in (REPO / "core" / "methods").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register" and node.args \
                    and isinstance(node.args[0], ast.Call):
                names |= {k.value.value for k in node.args[0].keywords
                          if k.arg == "name" and isinstance(k.value, ast.Constant)}
    return names


def test_every_registered_and_catalogued_name_is_found_in_a_fresh_interpreter():
    """`get_method(name)` as the first lookup of a new process (a job's, the CLI's) finds every method: those a
    module registers and every catalog line (ddpm_cfg_w75 was registered by ddpm.py but missing from the
    catalog, so a run asking for it alone failed with "unknown method"). One fresh interpreter imports the registry
    alone (no method module yet), then forks once per name, so each lookup starts from that empty registry."""
    from core.methods._catalog import CATALOG
    registered = _registered_names()
    assert {"smote", "dcgan", "ddpm_cfg", "ddpm_cfg_w75"} <= registered
    assert registered <= set(CATALOG), f"registered but not in core/methods/_catalog.py: {registered - set(CATALOG)}"
    names = sorted(registered | set(CATALOG))
    code = """
import json, os, sys
from core.methods import registry
assert not registry._REGISTRY, sorted(registry._REGISTRY)      # nothing registered before the first lookup
found = {}
for name in sys.argv[1:]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                              # the child: an untouched registry
        os.close(r)
        try:
            spec = registry.get_method(name)
            said = spec.family if spec.name == name else "got " + spec.name
        except Exception as err:
            said = "error: " + str(err)
        os.write(w, said.encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    found[name] = b"".join(chunks).decode()
print(json.dumps(found))
"""
    r = subprocess.run([sys.executable, "-c", code, *names], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    found = json.loads(r.stdout.strip().splitlines()[-1])
    wrong = {n: said for n, said in found.items() if said != CATALOG[n][1]}
    assert sorted(found) == names and not wrong, wrong


@pytest.fixture
def registry_order():
    """Put the catalog and registry back in their order: monkeypatch restores a deleted key at the dict's end,
    which moved ddpm_cfg_w75 last in every later `all_methods()` of the session."""
    from core.methods import _catalog, registry
    saved = [(d, dict(d)) for d in (_catalog.CATALOG, registry._REGISTRY)]
    yield
    for d, items in saved:
        d.clear()
        d.update(items)


def test_an_unlisted_name_a_catalog_module_registers_is_found_on_the_first_call(monkeypatch, registry_order):
    """The lookup itself, without the catalog line: a name only its module knows is found before "unknown"."""
    from core import plugins
    from core.methods import _catalog, registry
    monkeypatch.delitem(_catalog.CATALOG, "ddpm_cfg_w75")
    monkeypatch.delitem(plugins._IMPORTED, "core.methods.diffusion.ddpm", raising=False)
    monkeypatch.delitem(registry._REGISTRY, "ddpm_cfg_w75", raising=False)
    monkeypatch.delitem(registry._REGISTRY, "ddpm_cfg", raising=False)
    monkeypatch.delitem(sys.modules, "core.methods.diffusion.ddpm", raising=False)   # imported afresh
    assert registry.get_method("ddpm_cfg_w75").name == "ddpm_cfg_w75"


@pytest.mark.parametrize("how", ["raise SystemExit(3)", "import sys; sys.exit()", "raise KeyboardInterrupt"])
def test_a_plugin_that_exits_or_interrupts_at_import_is_listed_as_failed_and_the_rest_loads(tmp_path, how):
    """`core methods` went out with exit 3 / 130 and no output (issue 37, item 12)."""
    import os
    (tmp_path / "exiting_plugin.py").write_text(how + "\n")
    env = dict(os.environ, DEFECTAUG_PLUGINS="exiting_plugin",
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    r = subprocess.run([sys.executable, "-m", "core", "methods"], capture_output=True, text=True, cwd=REPO,
                       env=env, timeout=600)
    assert r.returncode == 0, (r.returncode, r.stderr)
    failed = [line for line in r.stdout.splitlines() if line.startswith("plugin exiting_plugin")]
    assert len(failed) == 1 and ("SystemExit" in failed[0] or "KeyboardInterrupt" in failed[0]), r.stdout
    assert "smote" in {line.split()[0] for line in r.stdout.splitlines() if line.strip()}
