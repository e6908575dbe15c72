"""Imports every method module once; each registers itself. Adding a method = one line here."""
from . import classic  # noqa: F401  none, random_oversample, augment
from . import interpolation  # noqa: F401  smote, borderline_smote, adasyn
from . import mixing  # noqa: F401  mixup, cutmix
from . import gan  # noqa: F401  gan, dcgan, cgan, wgan_gp, acgan
