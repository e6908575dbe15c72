"""Networks of the learned parts (classifier, GANs, ...). Training lives in `core`; these modules only
define layers: e.g. `models.gan` (MLP GAN) and `models.dcgan` (DCGAN with its conditional, ACGAN and
WGAN-GP critic variants)."""
