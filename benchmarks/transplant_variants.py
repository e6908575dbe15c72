"""Benchmark-only plugin (DEFECTAUG_PLUGINS=benchmarks.transplant_variants): `defect_paste_random`, defect_paste
with position=random by default, and `defect_paste_feather` (blend=feather: the defect's own pixels, not its
gradients), so one run trains the variants beside the same baselines."""
from __future__ import annotations

import dataclasses

from core.methods import get_method
from core.methods.registry import register
from core.methods.transplant import TransplantParams

_own = get_method("defect_paste")


@dataclasses.dataclass
class RandomPositionParams(TransplantParams):
    position: str = dataclasses.field(default="random", metadata=dataclasses.fields(TransplantParams)[0].metadata)


register(dataclasses.replace(_own, name="defect_paste_random", params_cls=RandomPositionParams,
                             summary="defect_paste at a random position (benchmark variant)."))


@dataclasses.dataclass
class FeatherParams(TransplantParams):
    blend: str = dataclasses.field(default="feather", metadata=dataclasses.fields(TransplantParams)[1].metadata)


register(dataclasses.replace(_own, name="defect_paste_feather", params_cls=FeatherParams,
                             summary="defect_paste with a feathered paste (benchmark variant)."))
