"""Parameter forms built from a params dataclass (the method registry's, the classifier's).

Each field becomes a widget chosen by its type and metadata (help, min, max, choices); only values
that differ from the preset's defaults are returned, so a job's overrides stay short and readable.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any

import streamlit as st


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the type without Optional, whether None is allowed)."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if args else str), True
    return tp, False


def params_form(params_cls: type, defaults: Any, key: str) -> dict[str, Any]:
    """Widgets for every field of `params_cls`, initialised from `defaults` (an instance).
    Returns {field: value} for the fields the user changed."""
    hints = typing.get_type_hints(params_cls)
    changed: dict[str, Any] = {}
    fields = dataclasses.fields(params_cls)
    cols = st.columns(3) if len(fields) > 2 else st.columns(max(1, len(fields)))
    for i, f in enumerate(fields):
        meta = f.metadata
        tp, optional = _base_type(hints.get(f.name, f.type))
        default = getattr(defaults, f.name)
        help_text = meta.get("help")
        wkey = f"{key}:{f.name}"
        with cols[i % len(cols)]:
            if "choices" in meta or typing.get_origin(tp) is typing.Literal:
                options = list(meta.get("choices") or typing.get_args(tp))
                value = st.selectbox(f.name, options, index=options.index(default) if default in options else 0,
                                     help=help_text, key=wkey)
            elif tp is bool:
                value = st.checkbox(f.name, value=bool(default), help=help_text, key=wkey)
            elif tp is int and not optional:
                value = int(st.number_input(f.name, value=int(default), step=1, help=help_text, key=wkey,
                                            min_value=int(meta["min"]) if "min" in meta else None,
                                            max_value=int(meta["max"]) if "max" in meta else None))
            elif tp is float and not optional:
                value = float(st.number_input(f.name, value=float(default), help=help_text, key=wkey,
                                              min_value=float(meta["min"]) if "min" in meta else None,
                                              max_value=float(meta["max"]) if "max" in meta else None,
                                              format="%g"))
            else:   # strings, optional numbers, lists: typed as text, converted by build_params
                shown = "" if default is None else (",".join(map(str, default)) if isinstance(default, list)
                                                    else str(default))
                text = st.text_input(f.name, value=shown, help=(help_text or "") +
                                     (" Leave empty for none." if optional else ""), key=wkey)
                value = text if text != shown else default
        if value != default:
            changed[f.name] = value
    return changed
