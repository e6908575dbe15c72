"""Networks of the learned methods (`models.gan`: MLP GAN, `models.dcgan`: DCGAN and its conditional,
ACGAN and WGAN-GP critic variants). Training lives in `core`; these modules only define the layers."""
