"""Methods from outside the project, for the tests of the plugin mechanism (DEFECTAUG_PLUGINS): a toy method,
one that needs a package nobody installed, and a module that cannot be imported at all. `write(folder)`
puts them in a folder of their own, outside the project: no file of DefectAug names them."""
from __future__ import annotations

from pathlib import Path

TOY = '''
"""A toy method from outside DefectAug: the class mean plus seeded noise."""
from dataclasses import dataclass

import numpy as np

from core.methods import MethodSpec, SampleBatch, register
from core.methods.classic import _KeepsImages
from core.params import param


@dataclass
class ToyParams:
    noise: float = param(8.0, "Standard deviation of the noise added to the class mean.", min=0.0, max=100.0)


class ToySampler(_KeepsImages):
    def sample(self, class_name, n, seed):
        if n <= 0:
            return self._empty()
        pool = self._pool(class_name)
        rng = np.random.default_rng(seed)
        mean = self.images_[pool].astype(np.float32).mean(0)
        imgs = np.clip(mean + rng.normal(0, self.params.noise, (n, *mean.shape)), 0, 255).astype(np.uint8)
        return SampleBatch(imgs, [[self.sources_[i] for i in pool[:2]] for _ in range(n)])


register(MethodSpec(name="toy_mean", family="classic", paper="a test's own method",
                    summary="The class mean plus noise (a test of the plugin mechanism).",
                    params_cls=ToyParams, sampler_cls=ToySampler))
register(MethodSpec(name="toy_needs_extra", family="diffusion", paper="a test's own method",
                    summary="Needs a package nobody installed.", params_cls=ToyParams, sampler_cls=ToySampler,
                    packages=("defectaug_surely_missing_package",)))
'''

BROKEN = "import defectaug_surely_missing_package  # the module itself cannot be imported\n"




def write(folder: Path) -> list[str]:
    """Write the plugin modules into `folder`; returns their module names."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy_methods.py").write_text(TOY, encoding="utf-8")
    (folder / "broken_methods.py").write_text(BROKEN, encoding="utf-8")
    return ["toy_methods", "broken_methods"]
