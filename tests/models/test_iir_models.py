"""IIR-SNN models of Fang et al. (IJCAI 2020): sizes, parameter counts, the constant-input shortcut, input checks."""
from __future__ import annotations

import math

import pytest
import torch

from cortexsnn.encoding import encode_input
from cortexsnn.models.iir_conv import IIRConvNet, _seq
from cortexsnn.models.iir_memory import IIRMemoryNet, normalised_dual_exp
from cortexsnn.models.iir_mlp import IIRMLP, spike_dropout


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_mlp_parameter_counts():
    # weights + biases (648,010) + 3 coefficients per input neuron of each layer (3 x 1,784): the seed's count
    assert _n_params(IIRMLP()) == 653_362
    assert _n_params(IIRMLP(synapse_type="first_order")) == 648_010 + 1_784


def test_mlp_counts_are_spike_counts():
    model = IIRMLP(steps=10).eval()
    counts = model(torch.rand(4, 1, 28, 28))
    assert counts.shape == (4, 10)
    assert ((counts >= 0) & (counts <= 10) & (counts == counts.round())).all()
    assert model.last_output_spikes.shape == (10, 4, 10)


@pytest.mark.parametrize("synapse", ["dual_exp", "first_order"])
def test_mlp_constant_input_shortcut_equals_filtering_the_repeated_image(synapse):
    model = IIRMLP(steps=12, synapse_type=synapse).eval()
    with torch.no_grad():
        model.linears[0].weight.mul_(8.0)  # make the net spike
        images = torch.rand(3, 784)
        counts = model(images)
        psp = model.psps[0](images.unsqueeze(0).expand(12, 3, 784))
        spikes = model.neurons[0](model.linears[0](psp))
        for k in (1, 2):
            spikes = model.neurons[k](model.linears[k](model.psps[k](spikes)))
    assert spikes.sum() > 0 or counts.sum() == 0
    torch.testing.assert_close(counts, spikes.sum(0))


def test_mlp_trains_its_coefficients_and_bias_flags():
    model = IIRMLP(train_coefficients=False, train_bias=False)
    assert not model.psps[0].a1.requires_grad and not model.linears[0].bias.requires_grad
    images, labels = torch.rand(8, 784), torch.randint(0, 10, (8,))
    model = IIRMLP()
    with torch.no_grad():
        for linear in model.linears:
            linear.weight.mul_(6.0)
    torch.nn.functional.cross_entropy(model(images), labels).backward()
    assert model.psps[1].a1.grad is not None and model.psps[1].a1.grad.abs().sum() > 0


def test_poisson_encoding_is_bernoulli_with_the_pixel_rate():
    torch.manual_seed(0)
    images = torch.tensor([[0.0, 0.25, 1.0]])
    spikes = encode_input(images, 4000, "poisson", max_rate=1.0)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(spikes.mean(0), images, atol=0.03, rtol=0)
    model = IIRMLP(steps=5, input_encoding="poisson")
    assert model(torch.rand(2, 784)).shape == (2, 10)


def test_spike_dropout_is_inverted_dropout():
    torch.manual_seed(0)
    x = torch.ones(50, 20, 100)
    y = spike_dropout(x, 0.3, training=True)
    assert (y == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    values = y.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / 0.7)
    assert spike_dropout(x, 0.3, training=False) is x


@pytest.mark.parametrize("model", [lambda: IIRMLP(steps=3), lambda: IIRConvNet(steps=2)])
def test_nan_input_is_refused(model):
    images = torch.rand(2, 1, 28, 28)
    images[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model()(images)


def test_wrong_input_size_is_refused():
    with pytest.raises(ValueError, match="784"):
        IIRMLP(steps=2)(torch.rand(2, 100))
    with pytest.raises(ValueError, match="28"):
        IIRConvNet(steps=2)(torch.rand(2, 1, 32, 32))


def test_conv_net_shapes_and_constant_input_shortcut():
    torch.manual_seed(0)
    model = IIRConvNet(steps=4).eval()
    images = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        counts = model(images)
        x = images.unsqueeze(0).expand(4, *images.shape)
        direct = _seq(model.convs[0], model.conv_psps[0](x))
        gain = model.conv_psps[0].step_response(4).reshape(4, 1, 1, 1, 1)
        shortcut = gain * torch.nn.functional.conv2d(images, model.convs[0].weight, padding=1).unsqueeze(0)
        shortcut = shortcut + model.convs[0].bias.view(1, 1, -1, 1, 1)
    assert counts.shape == (2, 10)
    torch.testing.assert_close(shortcut, direct, rtol=1e-5, atol=1e-5)
    assert model.fcs[0].in_features == 64 * 7 * 7 and model.fcs[0].out_features == 512


def test_small_conv_variant_pools_after_the_first_layer():
    torch.manual_seed(0)
    model = IIRConvNet(channels=(16, 32), kernel_size=5, pool_after=(0, 1), hidden=256, steps=3).eval()
    assert model.convs[1].in_channels == 16 and model.convs[1].kernel_size == (5, 5)
    assert model.fcs[0].in_features == 32 * 7 * 7 and model.fcs[0].out_features == 256
    with torch.no_grad():
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
        # the first layer's spikes are pooled: layer 2 sees 14x14 maps
        seen = []
        hook = model.convs[1].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
        model(torch.rand(2, 1, 28, 28))
        hook.remove()
    assert seen[0][-2:] == (14, 14)


@pytest.mark.parametrize("kwargs, match", [(dict(kernel_size=4), "odd"), (dict(pool_after=(7,)), "pool_after")])
def test_bad_conv_architecture_is_explained(kwargs, match):
    with pytest.raises(ValueError, match=match):
        IIRConvNet(**kwargs)


def test_memory_net_and_its_loss_filter():
    net = IIRMemoryNet()
    assert [l.in_features for l in net.linears] == [300, 500, 200, 500]
    assert _n_params(net) == 300 * 500 + 500 * 200 + 200 * 500 + 500 * 300 + 500 + 200 + 500 + 300 + 3 * (300 + 500 + 200 + 500)
    out = net((torch.rand(20, 2, 300) < 0.1).float())
    assert out.shape == (20, 2, 300)
    # normalised dual-exp kernel: v0 (e^(-n/8) - e^(-n/2)), v0 = eta^(eta/(eta-1)) / (eta-1), eta = 4
    impulse = torch.zeros(30, 1, 1, dtype=torch.float64)
    impulse[0] = 1.0
    n = torch.arange(30, dtype=torch.float64)
    v0 = 4 ** (4 / 3) / 3
    assert v0 == pytest.approx(2.1165, abs=1e-4)
    torch.testing.assert_close(normalised_dual_exp(impulse).flatten(), v0 * (torch.exp(-n / 8) - torch.exp(-n / 2)))
    # the continuous kernel's peak is 1
    t_peak = math.log(4) * 8 * 2 / 6
    assert v0 * (math.exp(-t_peak / 8) - math.exp(-t_peak / 2)) == pytest.approx(1.0, abs=1e-12)
