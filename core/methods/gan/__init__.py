"""The GAN family: `gan`, `dcgan`, `cgan`, `wgan_gp`, `acgan`, one file each; what they share is in
`common` (parameters, losses, DiffAugment, the per-class / conditional sampler). The registry imports each
file on first use (core/methods/_catalog.py)."""
