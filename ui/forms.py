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


def params_form(params_cls: type, defaults: Any, key: str, exclude: frozenset[str] | set[str] = frozenset()
                ) -> dict[str, Any]:
    """Widgets for every field of `params_cls` but those in `exclude`, initialised from `defaults` (an
    instance). Returns {field: value} for the fields the user changed."""
    hints = typing.get_type_hints(params_cls)
    changed: dict[str, Any] = {}
    fields = [f for f in dataclasses.fields(params_cls) if f.name not in exclude]
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


# Classifier fields that only mean something for one kind of network (hidden for the others), and the one the
# app never shows (a path on the server is the administrator's to configure, not a browser user's).
_SMALL_CNN_ONLY = {"stem_stride", "width"}
_PRETRAINED_ONLY = {"backbone_lr_scale"}


def classifier_form(preset: str, key: str) -> dict[str, Any]:
    """The classifier's settings: a paper's recipe, the architecture, "pretrained" (unavailable, with the
    reason, when this server has no ImageNet weights for the arch: it is then trained from scratch) and the
    other fields. Returns the overrides for `ExperimentConfig.overrides["classifier"]` (empty for the defaults)."""
    from core.classifier import ARCHS, RECIPE_HELP, ClassifierParams, params_values, pretrained_reason
    from core.params import build_params
    recipes = ["", *RECIPE_HELP]
    recipe = st.selectbox("Settings from", recipes, key=f"{key}:recipe",
                          format_func=lambda r: f"the {preset} preset" if not r else f"{r}: {RECIPE_HELP[r]}",
                          help="A paper's classifier settings over the preset; every field below can still be "
                               "changed.")
    base = build_params(ClassifierParams, params_values(preset, {"recipe": recipe}), "classifier")
    reasons = {a: pretrained_reason(a) for a in ARCHS[1:]}
    c1, c2 = st.columns(2)
    arch = c1.selectbox("arch", list(ARCHS), index=list(ARCHS).index(base.arch), key=f"{key}:{recipe}:arch",
                        format_func=lambda a: a if a == "small_cnn" else
                        f"{a} ({'ImageNet weights found' if not reasons[a] else 'from scratch'})",
                        help=ClassifierParams.__dataclass_fields__["arch"].metadata["help"])
    why = reasons.get(arch, "small_cnn is trained from scratch only (no ImageNet weights exist for it)")
    pretrained = c2.checkbox("pretrained", value=base.pretrained and not why, disabled=bool(why),
                             key=f"{key}:{recipe}:{arch}:pretrained",
                             help=ClassifierParams.__dataclass_fields__["pretrained"].metadata["help"])
    if why and arch != "small_cnn":
        c2.caption(f"Pretrained is unavailable: {why} {arch} is offered from scratch.")
    out: dict[str, Any] = {"recipe": recipe} if recipe else {}
    if arch != base.arch:
        out["arch"] = arch
    if pretrained != base.pretrained:
        out["pretrained"] = pretrained
    hide = {"arch", "pretrained", "weights_path"} | (_SMALL_CNN_ONLY if arch != "small_cnn" else set()) \
        | (_PRETRAINED_ONLY if not pretrained else set())
    out.update(params_form(ClassifierParams, base, key if not recipe else f"{key}:{recipe}", exclude=hide))
    return out
