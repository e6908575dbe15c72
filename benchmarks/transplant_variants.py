"""Benchmark-only plugin (DEFECTAUG_PLUGINS=benchmarks.transplant_variants): `defect_paste_random`, defect_paste
with position=random by default, `defect_paste_feather` (blend=feather), `defect_paste_auto` (its own masks even
where the dataset has masks), so one run trains the variants beside the same baselines."""
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


class _NoUserMasks(_own.sampler_cls):
    """defect_paste that finds every mask itself even where the dataset carries masks."""

    def fit(self, train, needed):
        self.ctx = dataclasses.replace(self.ctx, user_masks=None)
        return super().fit(train, needed)


register(dataclasses.replace(_own, name="defect_paste_auto", sampler_cls=_NoUserMasks,
                             summary="defect_paste ignoring the dataset's masks (benchmark variant: beside the "
                                     "real masks in one run)."))
