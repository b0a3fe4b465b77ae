"""ANN-to-SNN conversion (:func:`cortexsnn.conversion.convert`) on torchvision and hand-made networks.

For every network: analog mode reproduces the ANN, batch norm is folded, each activation call site
is one neuron layer, the spiking network equals a step-by-step reference simulation written here
independently of the kernel, the time chunking and the gating module, and its rate read-out
approaches the ANN's output as T grows. Then: bad inputs (one ``ConversionError`` each), the
original model left alone, state-dict round trips, and the converter's fixed bugs.

Networks have random, seeded weights; batch norm's running statistics are measured on random
images in training mode (so they are neither 0 / 1 nor far from the activations they normalise)
and its affine parameters are random, so folding is exercised with non-trivial values.
"""
from __future__ import annotations

import functools
import io
import sys
from pathlib import Path
from dataclasses import dataclass
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))
from _networks import one_thread, randomise_batch_norm  # noqa: E402,F401  (one_thread: autouse fixture)

from cortexsnn.conversion import ConversionConfig, ConversionError, GatedMaxPool, convert, rate_readout
from cortexsnn.neurons import reset

torchvision = pytest.importorskip("torchvision")

STEPS = 64




# --- networks ----------------------------------------------------------------------------------

class SharedReLU6(nn.Module):
    """One ``ReLU6`` module called at two places (EfficientNet-Lite style)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 16, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(16)
        self.act = nn.ReLU6()
        self.fc = nn.Linear(16, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.bn1(self.conv1(x)))
        x = self.act(self.bn2(self.conv2(x))) + x
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class ClampAndFunctionalReLU(nn.Module):
    """Activations as functions: ``torch.clamp(x, 0, 6)`` and ``F.relu``; one pooling as ``x.mean``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 24, 3, stride=2, padding=1), nn.BatchNorm2d(24)
        self.fc1, self.fc2 = nn.Linear(24, 32), nn.Linear(32, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.clamp(self.bn1(self.conv1(x)), 0, 6)
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc2(F.relu(self.fc1(x.mean((2, 3)))))


class VGG11BN(nn.Module):
    """torchvision's vgg11_bn: its feature layers (``torchvision.models.vgg.make_layers``, eight
    conv-BN-ReLU, five max poolings, gated here) and torchvision's initialisation, with a small
    classifier of the same form instead of its 25088 x 4096 one (whose initialisation alone takes
    seconds); batch norm so that folding is exercised too."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        self.features = make_layers(cfgs["A"], batch_norm=True)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 64), nn.ReLU(True), nn.Dropout(), nn.Linear(64, 10))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@dataclass(frozen=True)
class Case:
    build: Callable[[], nn.Module]
    shape: tuple[int, int, int]
    neurons: int  # activation call sites
    batch_norms: int
    gated_pools: int
    floor: float  # for the correlation of the T=64 read-out with the ANN's output (test_rate_readout_approaches_ann)


CASES = {
    "resnet18": Case(lambda: torchvision.models.resnet18(num_classes=10), (3, 32, 32), 17, 20, 1, 0.45),
    "vgg11_bn": Case(VGG11BN, (3, 32, 32), 9, 8, 5, 0.2),
    "mobilenet_v2": Case(lambda: torchvision.models.mobilenet_v2(num_classes=10), (3, 32, 32), 35, 52, 0, 0.45),
    "shared_relu6": Case(SharedReLU6, (3, 16, 16), 2, 2, 0, 0.9),
    "clamp_relu": Case(ClampAndFunctionalReLU, (3, 16, 16), 3, 2, 0, 0.9),
}
POOLED = [name for name, case in CASES.items() if case.gated_pools]


@dataclass
class Converted:
    case: Case
    ann: nn.Module
    snn: nn.Module
    images: Tensor
    ann_out: Tensor
    readout: Tensor  # [STEPS, B, 10]


@functools.lru_cache(maxsize=None)
def _converted(name: str) -> Converted:
    case = CASES[name]
    torch.manual_seed(0)
    ann = randomise_batch_norm(case.build(), case.shape, seed=1)
    gen = torch.Generator().manual_seed(2)
    calibration = torch.randn(16, *case.shape, generator=gen)
    images = torch.randn(8, *case.shape, generator=gen)
    snn = convert(ann, calibration)
    with torch.no_grad():
        ann_out = ann(images)
        reset(snn)
        readout = rate_readout(snn(images.unsqueeze(0).expand(STEPS, *images.shape)))
        reset(snn)
    return Converted(case, ann, snn, images, ann_out, readout)


@pytest.fixture(params=list(CASES))
def converted(request) -> Converted:
    return _converted(request.param)


def _correlation(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of the outputs' input-dependent parts (each output unit centred over the
    images): a random network's outputs share a large constant part that would make any read-out
    near the ANN's mean look correlated."""
    a = (a - a.mean(0)).flatten()
    b = (b - b.mean(0)).flatten()
    return float(a @ b / (a.norm() * b.norm()))


# --- every network --------------------------------------------------------------------------------

def test_analog_mode_reproduces_the_ann(converted):
    with torch.no_grad(), converted.snn.analog():
        analog = converted.snn(converted.images.unsqueeze(0))[0]
    scale = converted.ann_out.abs().max()
    assert float((analog - converted.ann_out).abs().max() / scale) < 1e-4


def test_batch_norm_folded_and_one_neuron_per_call_site(converted):
    case = converted.case
    snn = converted.snn
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in snn.network.modules())
    assert snn.info["folded_batch_norms"] == case.batch_norms
    assert len(snn.neurons) == case.neurons == snn.info["neurons"]
    assert sum(isinstance(m, GatedMaxPool) for m in snn.network.modules()) == case.gated_pools
    called = [snn.network.get_submodule(n.target) for n in snn.network.graph.nodes if n.op == "call_module"]
    assert not any(isinstance(m, nn.modules.pooling._MaxPoolNd) for m in called)  # every max pooling is gated
    # thresholds never exceed a bounded activation's bound (ReLU6: 6)
    for neuron in snn.neurons:
        assert bool((neuron.threshold > 0).all())
        if neuron.upper is not None:
            assert float(neuron.threshold.max()) <= neuron.upper


# the max pooling of the reference below: True, the exact max GatedMaxPool computes; False, the gate of
# Rueckauer et al. (2017) it had before
EXACT_MAX_POOL = True


def reference_readout(snn, images: Tensor, steps: int) -> Tensor:
    """The converted network's dynamics written out step by step, independently of the compiled
    kernel, the time chunking and the gating module: the network runs in analog mode one step at a
    time (so its linear layers are the converted ones), and hooks replace each neuron layer's output
    by signed, bursting IF neurons (reset by subtraction, theta / 2 start) and each max pooling's by
    a gate: the input with the largest spike sum so far passes its spikes (Rueckauer et al. 2017),
    or (``EXACT_MAX_POOL``) the increase of the largest spike sum is passed."""
    state: dict = {}

    def neuron(module, inputs, _):
        x = inputs[0]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        theta, top = module.threshold.reshape(shape), module.max_spikes.reshape(shape)
        if module not in state:
            state[module] = [(module.initial_potential * theta).expand_as(x).clone(), torch.zeros_like(x)]
        v, count = state[module]
        v = v + (x + module.bias.reshape(shape))
        s = torch.floor(v / theta)
        low = -torch.minimum(count, top) if module.signed else torch.zeros_like(v)
        s = torch.minimum(torch.maximum(s, low), top)
        state[module] = [v - s * theta, count + s]
        return s * theta

    def gate(module, inputs, _):
        x = inputs[0]
        previous = state.get(module)
        total = state[module] = x if previous is None else previous + x
        p = module.pool
        window_max, index = F.max_pool2d(total, p.kernel_size, p.stride, p.padding, p.dilation, p.ceil_mode,
                                         return_indices=True)
        if EXACT_MAX_POOL:
            return window_max if previous is None else window_max - F.max_pool2d(
                previous, p.kernel_size, p.stride, p.padding, p.dilation, p.ceil_mode)
        return x.flatten(2).gather(2, index.flatten(2)).reshape(index.shape)

    handles = [m.register_forward_hook(neuron) for m in snn.neurons]
    handles += [m.register_forward_hook(gate) for m in snn.network.modules() if isinstance(m, GatedMaxPool)]
    try:
        with torch.no_grad(), snn.analog():
            outputs = torch.stack([snn(images.unsqueeze(0))[0] for _ in range(steps)])
    finally:
        for h in handles:
            h.remove()
    return rate_readout(outputs)


def test_equals_step_by_step_reference(converted):
    steps = 12
    expected = reference_readout(converted.snn, converted.images[:4], steps)
    seq = converted.images[:4].unsqueeze(0).expand(steps, 4, *converted.images.shape[1:])
    chunk = converted.snn.time_chunk
    try:
        converted.snn.time_chunk = 1  # the same batches as the reference: bit-identical
        reset(converted.snn)
        with torch.no_grad():
            got = rate_readout(converted.snn(seq))
        converted.snn.time_chunk = chunk  # a chunk of 8 steps and a partial one: the convolutions see other
        reset(converted.snn)              # batch sizes, so they may round differently (oneDNN picks by size)
        with torch.no_grad():
            chunked = rate_readout(converted.snn(seq))
    finally:
        converted.snn.time_chunk = chunk
        reset(converted.snn)
    # the kernel's spike tensors and the reference's may differ in memory layout, and a later pooling or
    # convolution then sums in another order: float rounding (1e-7), not a different spike
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # Chunked, a potential within float rounding of its threshold can fire one step earlier or later
    # (measured on mobilenet_v2 under load: 20 of 480 read-outs off, by at most one burst): the
    # read-out must stay that close, on average and for nearly every element.
    off = (chunked - expected).abs()
    assert off.mean() < 0.02 * expected.abs().mean() and (off > 1e-4).float().mean() < 0.1


def test_rate_readout_approaches_ann(converted):
    """The read-out's correlation with the ANN (input-dependent parts) grows from T=8 to T=64 (its
    distance to 1 shrinks by a tenth at least) and is above a floor at T=64.

    Measured at these seeds (T=8 -> 64, ``ConversionConfig()``, 16 calibration images): resnet18
    0.14 -> 0.65, vgg11_bn 0.18 -> 0.31, mobilenet_v2 0.19 -> 0.67, shared_relu6 0.99 -> 1.00,
    clamp_relu 0.93 -> 1.00. The floors are about 0.7 of those: spike trains are chaotic, so a
    floating-point library that breaks one tie differently changes later spikes (measured: the
    T=32 correlation moves by ~0.01). A random network's outputs on noise differ little from
    image to image (the input-dependent part is 5-60% of the output's spread), which a 64-step rate
    code of 17-35 layers carries only roughly: mobilenet_v2 with each activation replaced by its
    ideal T-step quantisation (no temporal error) reached 0.75 at T=64 (another seed, where the SNN
    reached 0.63), so most of its gap is quantisation, not the simulation.
    The networks with max pooling lag because of the gating's bias (see
    test_pooled_networks_converge_once_the_gate_is_exact): with that fixed resnet18 and vgg11_bn
    reach 0.98 and 0.99.
    """
    early = _correlation(converted.readout[7], converted.ann_out)
    late = _correlation(converted.readout[STEPS - 1], converted.ann_out)
    assert 1 - late < 0.9 * (1 - early), (early, late)  # the distance to a perfect read-out shrinks
    assert late > converted.case.floor, (early, late)


def _window_counts(x: Tensor) -> Tensor:
    """Running spike sums of each 2 x 2 window's four inputs ``[T, B, C, H/2, W/2, 4]``."""
    return x.cumsum(0).unfold(3, 2, 2).unfold(4, 2, 2).flatten(-2)


@pytest.mark.parametrize("signed", [False, True])
def test_gated_max_pool_count_is_the_largest_input_count(signed):
    # the converted network's claim (modules.py): the pooled rate is the max rate. Four inputs per window
    # with nearly equal rates (0.40-0.46) change the lead often.
    gen = torch.Generator().manual_seed(0)
    steps = 200
    rates = 0.4 + 0.02 * torch.arange(4.0)
    spikes = (torch.rand(steps, 1, 3, 2, 2, 4, generator=gen) < rates).float()
    if signed:  # and some spikes given back
        spikes -= (torch.rand(steps, 1, 3, 2, 2, 4, generator=gen) < 0.1).float() * (spikes.cumsum(0) > 1).float()
    x = spikes.reshape(steps, 1, 3, 2, 2, 2, 2).permute(0, 1, 2, 3, 5, 4, 6).reshape(steps, 1, 3, 4, 4)
    pool = GatedMaxPool(nn.MaxPool2d(2))
    pool.steps = steps
    with torch.no_grad():
        out = pool(x.flatten(0, 1)).reshape(steps, 1, 3, 2, 2)
    assert torch.equal(out.cumsum(0), _window_counts(x).amax(-1))


@pytest.mark.parametrize("name", POOLED)
def test_pooled_networks_converge_once_the_gate_is_exact(name):
    # measured with the pooled output taken as the increase of the window's largest running sum: resnet18
    # 0.42 -> 0.98, vgg11_bn 0.75 -> 0.99 (T=8 -> 64)
    converted = _converted(name)
    assert _correlation(converted.readout[STEPS - 1], converted.ann_out) > 0.9


# --- the chunking and the state ------------------------------------------------------------------------

def _small_snn(config: ConversionConfig | None = None, seed: int = 0):
    torch.manual_seed(seed)
    ann = randomise_batch_norm(ClampAndFunctionalReLU(), (3, 16, 16), seed=seed + 1)
    gen = torch.Generator().manual_seed(seed + 2)
    return ann, convert(ann, torch.randn(16, 3, 16, 16, generator=gen), config), torch.randn(4, 3, 16, 16, generator=gen)


def test_time_chunk_and_split_calls_do_not_change_spikes():
    ann, snn, x = _small_snn()
    seq = x.unsqueeze(0).expand(24, *x.shape)
    with torch.no_grad():
        reset(snn)
        whole = snn(seq)
        outputs = []
        for chunk in (1, 5, 24):
            snn.time_chunk = chunk
            reset(snn)
            outputs.append(snn(seq))
        reset(snn)
        split = torch.cat([snn(seq[:10]), snn(seq[10:])])  # the state carries over between calls
    for out in outputs + [split]:
        assert torch.equal(out, whole)


def test_state_dict_round_trip():
    ann, snn, x = _small_snn()
    gen = torch.Generator().manual_seed(9)
    other = convert(ann, torch.rand(16, 3, 16, 16, generator=gen) * 3)  # other calibration: other thresholds
    assert not torch.equal(other.neurons[0].threshold, snn.neurons[0].threshold)
    buffer = io.BytesIO()
    torch.save(snn.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert not any(k.endswith((".v", ".count")) for k in state)  # membrane state is not saved
    other.load_state_dict(state)
    seq = x.unsqueeze(0).expand(16, *x.shape)
    with torch.no_grad():
        reset(snn), reset(other)
        assert torch.equal(other(seq), snn(seq))


def test_original_model_is_left_alone():
    torch.manual_seed(0)
    ann = randomise_batch_norm(torchvision.models.resnet18(num_classes=10), (3, 32, 32), seed=1)
    ann.train()
    before = {k: v.clone() for k, v in ann.state_dict().items()}
    snn = convert(ann, torch.randn(16, 3, 32, 32))
    after = ann.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert ann.training and all(m.training for m in ann.modules())
    assert all(p.requires_grad for p in ann.parameters())
    assert not any(p is q for p in ann.parameters() for q in snn.parameters())


# --- bad input: one clear ConversionError each ----------------------------------------------------------

class Digits(nn.Module):
    def __init__(self, tail: nn.Module | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.tail = tail or nn.Identity()
        self.fc = nn.Linear(8 * 26 * 26, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.tail(self.act(self.bn(self.conv(x)))).flatten(1))


class ProductOfActivations(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 4, 3), nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc((F.relu(self.a(x)) * F.relu(self.b(x))).mean((2, 3)))


DIGITS = torch.rand(16, 1, 28, 28)


@pytest.mark.parametrize("layer, name", [(nn.Sigmoid(), "Sigmoid"), (nn.GELU(), "GELU"), (nn.SiLU(), "SiLU")])
def test_unmappable_layer_is_named(layer, name):
    with pytest.raises(ConversionError, match=rf"'tail' of type {name}"):
        convert(Digits(layer).eval(), DIGITS)


def test_product_of_activations_is_refused():
    with pytest.raises(ConversionError, match=r"'mul'.*not linear"):
        convert(ProductOfActivations().eval(), DIGITS)


def test_network_without_activation():
    with pytest.raises(ConversionError, match="no ReLU"):
        convert(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten()).eval(), DIGITS)


def test_wrong_channels():
    with pytest.raises(ConversionError, match=r"does not run on inputs of shape \(3, 28, 28\)"):
        convert(Digits().eval(), torch.rand(16, 3, 28, 28))


def test_wrong_rank():
    with pytest.raises(ConversionError, match=r"shape \(28, 28\)"):  # 16 images without their channel axis
        convert(Digits().eval(), torch.rand(16, 28, 28))
    with pytest.raises(ConversionError, match=r"shape \(1, 1, 28, 28\)"):
        convert(Digits().eval(), torch.rand(16, 1, 1, 28, 28))
    with pytest.raises(ConversionError, match=r"\[N, \.\.\.\]"):
        convert(Digits().eval(), torch.rand(16))


def test_too_few_calibration_images():
    with pytest.raises(ConversionError, match="3 calibration images are too few"):
        convert(Digits().eval(), DIGITS[:3])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_calibration_images(bad):
    images = DIGITS.clone()
    images[5, 0, 3, 4] = bad
    with pytest.raises(ConversionError, match="NaN or infinite"):
        convert(Digits().eval(), images)


def test_integer_calibration_images():
    with pytest.raises(ConversionError, match="floating-point"):
        convert(Digits().eval(), (DIGITS * 255).to(torch.uint8))


# --- bugs the converter had ------------------------------------------------------------------------------

class SharedConv(nn.Module):
    """One convolution called at two places, each call followed by its own batch norm (weight sharing)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn_a, self.bn_b = nn.BatchNorm2d(8), nn.BatchNorm2d(8)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: Tensor) -> Tensor:
        a = F.relu(self.bn_a(self.conv(x))).mean((2, 3))
        b = F.relu(self.bn_b(self.conv(F.avg_pool2d(x, 2)))).mean((2, 3))
        return self.fc(torch.cat([a, b], 1))


class InPlaceAlias(nn.Module):
    """An in-place ReLU whose input tensor is used again afterwards (it holds the ReLU's output then)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv(x)
        y = self.relu(h)
        return self.fc((y + h).mean((2, 3)))  # = 2 relu(conv(x)) in PyTorch


def _analog_error(model: nn.Module) -> float:
    images = torch.randn(16, 3, 8, 8)
    snn = convert(model, images)
    with torch.no_grad(), snn.analog():
        return float((snn(images.unsqueeze(0))[0] - model(images)).abs().max())


def test_batch_norm_folding_keeps_shared_convolution_intact():
    torch.manual_seed(0)
    model = randomise_batch_norm(SharedConv(), (3, 8, 8), seed=1)
    assert _analog_error(model) < 1e-5


def test_in_place_activation_alias():
    torch.manual_seed(0)
    assert _analog_error(InPlaceAlias().eval()) < 1e-5


class Reciprocal(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc((1.0 / (F.relu(self.conv(x)) + 1.0)).mean((2, 3)))


def test_division_by_an_activation_is_refused():
    with pytest.raises(ConversionError, match="truediv"):
        convert(Reciprocal().eval(), DIGITS)


class Difference(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.a(x))
        return self.fc(F.relu(self.b(h) - h).mean((2, 3)))


def test_subtraction_is_linear():
    assert _analog_error_digits(Difference().eval()) < 1e-5


def _analog_error_digits(model: nn.Module) -> float:
    snn = convert(model, DIGITS)
    with torch.no_grad(), snn.analog():
        return float((snn(DIGITS.unsqueeze(0))[0] - model(DIGITS)).abs().max())


def test_in_place_functional_relu_is_an_activation():
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4, 10)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(F.relu_(self.conv(x)).mean((2, 3)))

    assert _analog_error_digits(Model().eval()) < 1e-5


def test_wrong_channels_message_names_the_cause(capfd):
    with pytest.raises(ConversionError) as info:
        convert(Digits().eval(), torch.rand(16, 3, 28, 28))
    assert "to have 1 channels, but got 3 channels" in str(info.value)
    assert "Traceback" not in capfd.readouterr().err
