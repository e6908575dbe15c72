"""The diffusion family (issue "Diffusion"): `ddpm_cfg` and `ddpm_translate` (ddpm.py, a class-conditional
UNet2DModel trained from scratch with classifier-free guidance, and SDEdit from real normal images), and
`stable_diffusion` (stable_diffusion.py, a pretrained pipeline from a local folder). Built on diffusers:
no hand-written UNet or scheduler."""
