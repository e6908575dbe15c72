"""The registry of synthesis methods: names -> `MethodSpec`, loaded lazily.

    get_method("smote")          # imports core.methods.interpolation on first use; a name no catalog line
                                 # names is looked for in every catalog module and plugin before "unknown"
    method_names()               # every name: the catalog's, then the plugins'
    all_methods()                # every spec, unavailable ones included (spec.unavailable_reason())
    available_methods()          # the ones that can run here

Built-in methods are listed in `_catalog.CATALOG` (name -> module). Methods from outside the project
register themselves from a module named in the environment variable DEFECTAUG_PLUGINS (module names
separated by commas, importable from the Python path): every entry point (the CLI, the app, the job
process, the tests) imports them, so a plant's own generator appears in `python -m core methods`, the
Synthesize form and the common checks without a change to this project. A module that cannot be
imported never breaks the others: its methods are listed as unavailable with the import error.
"""
from __future__ import annotations

import dataclasses

from ..errors import ParamError
from ..plugins import PLUGINS_ENV, import_module, load_plugins
from ._catalog import CATALOG
from .base import PRESETS, MethodSpec, NoParams, Sampler

__all__ = ["PLUGINS_ENV", "all_methods", "available_methods", "get_method", "method_names", "plugin_errors",
           "register"]

_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method (called once by its module, at import)."""
    if spec.name in _REGISTRY and not _REGISTRY[spec.name].broken:
        raise ValueError(f"method {spec.name!r} is registered twice")
    if spec.name == "none" or spec.name.startswith("baseline"):
        raise ValueError(f"{spec.name!r} names a baseline, not a method")
    if not dataclasses.is_dataclass(spec.params_cls):
        raise TypeError(f"{spec.name}: params_cls must be a dataclass")
    for preset, over in spec.presets.items():
        if preset not in PRESETS or preset == "quick":
            raise TypeError(f"{spec.name}: preset {preset!r} is not one of paper, tiny (quick = the field defaults)")
        unknown = set(over) - {f.name for f in dataclasses.fields(spec.params_cls)}
        if unknown:
            raise TypeError(f"{spec.name}: preset {preset} sets unknown params {sorted(unknown)}")
    _REGISTRY[spec.name] = spec
    return spec


def _broken(name: str, family: str, why: str) -> MethodSpec:
    return MethodSpec(name=name, family=family, paper="-", summary=f"Unavailable: {why}",
                      params_cls=NoParams, sampler_cls=Sampler, broken=why)


def get_method(name: str) -> MethodSpec:
    """The spec of `name` (unavailable ones too: ask `spec.unavailable_reason()`)."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in CATALOG:
        module, family = CATALOG[name]
        why = import_module(module)
        if name not in _REGISTRY:
            _REGISTRY[name] = _broken(name, family, why or f"its module {module} does not register it")
        return _REGISTRY[name]
    load_plugins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    for module, _family in dict.fromkeys(CATALOG.values()):   # a name a catalog module registers, unlisted
        import_module(module)
        if name in _REGISTRY:
            return _REGISTRY[name]
    if name in ("none", "baseline"):
        raise ParamError("'none' is not a method: every run trains the baselines on the imbalanced set anyway")
    raise ParamError(f"unknown method {name!r}; available: {', '.join(method_names())}")


def method_names() -> list[str]:
    """Every method name: the catalog's in its order, then those the plugins registered."""
    return [spec.name for spec in all_methods()]


def all_methods() -> list[MethodSpec]:
    """Every spec, available or not, catalog first."""
    specs = [get_method(name) for name in CATALOG]
    load_plugins()
    specs += [spec for name, spec in _REGISTRY.items() if name not in CATALOG]
    return specs


def available_methods() -> list[MethodSpec]:
    return [spec for spec in all_methods() if spec.available]


def plugin_errors() -> dict[str, str]:
    """Plugin modules (DEFECTAUG_PLUGINS) that could not be imported, with why."""
    return load_plugins()
