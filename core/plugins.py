"""Extensions from outside the project: modules named in DEFECTAUG_PLUGINS (comma-separated, importable from
the Python path) are imported once by every entry point that looks something up by name (the method
registry, the job runner). A module registers what it brings when imported: `core.methods.register(spec)` for
a synthesis method, `core.jobs.register_job_kind(name, fn)` for a job kind. A module that fails to import
never breaks the rest: the failure is kept, with why, for `python -m core methods` to show."""
from __future__ import annotations

import importlib
import os
import traceback

PLUGINS_ENV = "DEFECTAUG_PLUGINS"

_IMPORTED: dict[str, str | None] = {}     # module -> None when imported, else why it failed


def import_module(module: str) -> str | None:
    """Import `module` once; None when it worked, else the reason it failed."""
    if module not in _IMPORTED:
        try:
            importlib.import_module(module)
            _IMPORTED[module] = None
        except (Exception, SystemExit, KeyboardInterrupt) as err:  # noqa: BLE001  any failure disables that
            # module only: one that calls sys.exit() or raises KeyboardInterrupt while importing stopped
            # `core methods` (exit 3 / 130, no output) and the app
            last = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
            where = f" ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})" if last else ""
            _IMPORTED[module] = f"its module {module} could not be imported: {type(err).__name__}: {err}{where}"
    return _IMPORTED[module]


def plugin_modules() -> list[str]:
    return [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]


def load_plugins() -> dict[str, str]:
    """Import every plugin module (once); {module: why it failed} for those that did not import."""
    out = {}
    for module in plugin_modules():
        why = import_module(module)
        if why:
            out[module] = why
    return out
