"""Typed parameters: the dataclass fields every method, the classifier and the UI forms share.

    @dataclass
    class SmoteParams:
        k_neighbors: int = param(5, "Neighbours of the same class to interpolate towards.", min=1, max=100)

    build_params(SmoteParams, {"k_neighbors": "3"}, "smote")   # from strings (CLI, UI), range-checked

A field's metadata carries its help text (shown in the UI form and the CLI) and its bounds (`min`, `max`,
`choices`), checked by `build_params`; a dataclass may also define `validate()` for checks across fields.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import field
from typing import Any

from .errors import ParamError


# ---------------------------------------------------------------------------------------------
def _field_type(params_cls: type, f: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(params_cls)
    return hints.get(f.name, f.type)


def coerce_value(tp: Any, value: Any, where: str) -> Any:
    """Convert `value` (often a string from the CLI) to the annotated type `tp`."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        return coerce_value(args[0], value, where)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ParamError(f"{where} must be one of {list(allowed)}, got {value!r}")
        return value
    if origin in (list, tuple):
        (inner,) = typing.get_args(tp)[:1] or (str,)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        return [coerce_value(inner, v, where) for v in value]
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            return bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(float(value)) if isinstance(value, str) and "." in value else int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        raise ParamError(f"{where} expects {getattr(tp, '__name__', tp)}, got {value!r}") from None
    return value


def build_params(params_cls: type, values: dict[str, Any], owner: str) -> Any:
    """An instance of `params_cls` from defaults + `values`, type-converted and range-checked."""
    names = {f.name: f for f in dataclasses.fields(params_cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise ParamError(f"{owner} has no parameter {', '.join(sorted(unknown))}; "
                         f"its parameters are {', '.join(names)}")
    kwargs = {}
    for key, value in values.items():
        f = names[key]
        where = f"{owner}.{key}"
        v = coerce_value(_field_type(params_cls, f), value, where)
        meta = f.metadata
        if "choices" in meta and v not in meta["choices"]:
            raise ParamError(f"{where} must be one of {list(meta['choices'])}, got {v!r}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if "min" in meta and v < meta["min"]:
                raise ParamError(f"{where} must be at least {meta['min']}, got {v}")
            if "max" in meta and v > meta["max"]:
                raise ParamError(f"{where} must be at most {meta['max']}, got {v}")
        kwargs[key] = v
    obj = params_cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def param(default: Any, help: str, **bounds: Any) -> Any:
    """A dataclass field with its help text and bounds (min, max, choices) for UI and validation."""
    return field(default=default, metadata={"help": help, **bounds})
