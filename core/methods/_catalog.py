"""Where each built-in method lives. The registry imports a module the first time one of its methods is
asked for; a module that fails to import disables its methods only (listed as unavailable, with why).

Adding a built-in method = its module (one `register` call) + one line here (a name its module registers but
this table lacks is still found, by loading every module, and fails tests/core/methods/test_registry.py). Methods from elsewhere
(a plant's own generator) need no line: name their modules in DEFECTAUG_PLUGINS (see `registry`).
"""
CATALOG: dict[str, tuple[str, str]] = {          # name: (module, family)
    "random_oversample": ("core.methods.classic", "classic"),
    "augment": ("core.methods.classic", "classic"),
    "smote": ("core.methods.interpolation", "interpolation"),
    "borderline_smote": ("core.methods.interpolation", "interpolation"),
    "adasyn": ("core.methods.interpolation", "interpolation"),
    "mixup": ("core.methods.mixing", "mixing"),
    "cutmix": ("core.methods.mixing", "mixing"),
    "cmo": ("core.methods.mixing", "mixing"),
    "defect_paste": ("core.methods.transplant", "transplant"),
    "gan": ("core.methods.gan.gan", "gan"),
    "dcgan": ("core.methods.gan.dcgan", "gan"),
    "cgan": ("core.methods.gan.cgan", "gan"),
    "wgan_gp": ("core.methods.gan.wgan_gp", "gan"),
    "acgan": ("core.methods.gan.acgan", "gan"),
    "bagan": ("core.methods.gan.bagan", "gan"),
    "bagan_gp": ("core.methods.gan.bagan_gp", "gan"),
    "ida_gan": ("core.methods.gan.ida_gan", "gan"),
    "three_player_gan": ("core.methods.gan.three_player", "gan"),
    "cyclegan": ("core.methods.translation.cyclegan", "translation"),
    "ddpm_cfg": ("core.methods.diffusion.ddpm", "diffusion"),
    "ddpm_cfg_w75": ("core.methods.diffusion.ddpm", "diffusion"),
    "ddpm_translate": ("core.methods.diffusion.translate", "diffusion"),
    "stable_diffusion": ("core.methods.diffusion.stable_diffusion", "diffusion"),
}
