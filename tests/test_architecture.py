"""The layering the project relies on, read from the source (ast), not from a running import:
core/ and models/ have no import cycle, models/ never imports core, core never imports streamlit; the
training loop names no method, mode or loss; every GAN file stays a readable size."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in ("core", "models"):
        for f in (REPO / pkg).rglob("*.py"):
            rel = f.relative_to(REPO).with_suffix("")
            mods[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = f
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Every module (and top-level package outside the project) `name` imports, anywhere in the file."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = name.split(".") if is_pkg else name.split(".")[:-1]
            if node.level > 1:
                base = base[:len(base) - (node.level - 1)]
            stem = ".".join(base + [node.module] if node.module else base) if node.level else (node.module or "")
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in mods else stem for a in node.names]
        for t in targets:
            while t not in mods and "." in t:
                t = t.rsplit(".", 1)[0]
            out.add(t)
    return out - {name}


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    mods = _modules()
    every = {m: _imports(m, f, mods) for m, f in mods.items()}
    # a package importing its own submodules (its public re-exports) is not a cycle
    inner = {m: {t for t in ts if t in mods and not t.startswith(m + ".")} for m, ts in every.items()}
    return every, inner


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_in_core_and_models():
    _, edges = _graph()
    assert len(edges) > 40                         # the walk found the packages
    assert _cycles(edges) == []


def test_the_cycle_check_can_fail():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_models_never_import_core_and_core_never_imports_streamlit():
    every, _ = _graph()
    assert {m: sorted(t for t in ts if t.startswith("core")) for m, ts in every.items()
            if m.startswith("models") and any(t.startswith("core") for t in ts)} == {}
    assert sorted(m for m, ts in every.items() if m.startswith("core") and any(
        t.split(".")[0] == "streamlit" for t in ts)) == []


def test_the_training_loop_names_no_method_mode_or_loss():
    from core.methods import method_names
    from core.methods.gan.common import LOSSES
    banned = set(method_names()) | set(LOSSES) | {"conditional", "aux", "critic", "wasserstein", "acgan", "cgan",
                                                 "mode", "gradient_penalty"}
    for f in (REPO / "core" / "training").glob("*.py"):
        words = set(re.findall(r"[A-Za-z_]+", " ".join(_code_words(ast.parse(f.read_text(encoding="utf-8"))))))
        assert not banned & words, f"{f.name} names {sorted(banned & words)}"


def _code_words(tree: ast.AST) -> list[str]:
    """Names, attributes, arguments and string constants of the code; docstrings (which may say what the
    loop does not do) left out."""
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Name):
            out.append(n.id)
        elif isinstance(n, ast.Attribute):
            out.append(n.attr)
        elif isinstance(n, ast.arg):
            out.append(n.arg)
        elif isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            out.append(n.name)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            out.append(n.value)
    return out


@pytest.mark.parametrize("path", sorted([*(REPO / "core" / "methods" / "gan").glob("*.py"),
                                         *(REPO / "core" / "methods" / "translation").glob("*.py"),
                                         *(REPO / "core" / "methods" / "diffusion").glob("*.py")]),
                         ids=lambda p: p.name)
def test_each_gan_file_reads_top_to_bottom(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 300


def test_pages_and_ui_only_call_core():
    """The UI holds no training or data logic: it never imports torch, numpy-heavy core internals or the
    experiment's tasks directly."""
    for f in [REPO / "app.py", *(REPO / "pages").glob("*.py"), *(REPO / "ui").glob("*.py")]:
        tops = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                tops |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                tops.add(node.module)
        assert not {t for t in tops if t.split(".")[0] in ("torch", "sklearn", "imblearn", "models")
                    or t.startswith(("core.experiment.tasks", "core.training"))}, f.name
