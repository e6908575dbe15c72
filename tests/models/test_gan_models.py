"""The GAN networks in models/: output shapes at every supported size, the conditional variants, the
critic without BatchNorm, seeded initialisation, and a clear error for unsupported sizes."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from models.dcgan import DCGANDiscriminator, DCGANGenerator, build_dcgan, check_size
from models.gan import build_mlp


@pytest.mark.parametrize("size", [16, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    G, D = build_dcgan(8, channels, size, 4, 4)
    x = G(torch.randn(2, 8))
    assert x.shape == (2, channels, size, size)
    assert float(x.detach().abs().max()) <= 1.0              # Tanh output
    logit, aux = D(x)
    assert logit.shape == (2,) and aux is None


def test_dcgan_follows_radford_guidelines():
    G, D = build_dcgan(8, 1, 64, 4, 4)
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Linear)) for m in [*G.modules(), *D.modules()])
    assert isinstance(G.net[-1], nn.Tanh)
    assert any(isinstance(m, nn.LeakyReLU) for m in D.modules())
    assert not isinstance(D.features[1], nn.BatchNorm2d)     # no BatchNorm on D's first layer
    assert sum(isinstance(m, nn.BatchNorm2d) for m in D.modules()) == 3


def test_conditional_variants():
    G, D = build_dcgan(8, 1, 32, 4, 4, n_classes=3, conditional_d=True)
    y = torch.tensor([0, 2])
    x = G(torch.randn(2, 8), y)
    assert D(x, y)[0].shape == (2,)
    with pytest.raises(ValueError, match="labels"):
        G(torch.randn(2, 8))
    # acgan: unconditional D input, class head
    G, D = build_dcgan(8, 3, 32, 4, 4, n_classes=5, aux=True)
    logit, aux = D(G(torch.randn(2, 8), torch.tensor([1, 4])))
    assert logit.shape == (2,) and aux.shape == (2, 5)


@pytest.mark.parametrize("norm", ["none", "layer"])
def test_wgan_critic_has_no_batchnorm(norm):
    D = DCGANDiscriminator(1, 32, 4, norm=norm)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    # per-sample: one image's score does not depend on the rest of the batch
    x = torch.randn(3, 1, 32, 32)
    torch.testing.assert_close(D(x)[0][:1], D(x[:1])[0])


@pytest.mark.parametrize("size", [8, 24, 48, 512])
def test_unsupported_sizes(size):
    with pytest.raises(ValueError, match="power of two"):
        check_size(size)
    with pytest.raises(ValueError):
        DCGANGenerator(8, 1, size, 4)


def test_mlp_shapes():
    G, D = build_mlp(8, 3, 20, 8, 8)
    x = G(torch.randn(4, 8))
    assert x.shape == (4, 3, 20, 20)
    assert D(x)[0].shape == (4,)
    assert any(isinstance(m, nn.BatchNorm1d) for m in G.modules())


def test_same_generator_seed_same_weights():
    a = build_dcgan(8, 1, 16, 4, 4, generator=torch.Generator().manual_seed(1))
    b = build_dcgan(8, 1, 16, 4, 4, generator=torch.Generator().manual_seed(1))
    c = build_dcgan(8, 1, 16, 4, 4, generator=torch.Generator().manual_seed(2))
    for x, y, z in zip(a[0].parameters(), b[0].parameters(), c[0].parameters()):
        torch.testing.assert_close(x, y)
    assert any(not torch.equal(x, z) for x, z in zip(a[0].parameters(), c[0].parameters()))
