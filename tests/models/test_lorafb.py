import pytest
import torch

from cortexsnn.models import create_model, list_models
from cortexsnn.models.checkpoints import load_weights
from cortexsnn.models.sew_resnet import BasicBlock
from cortexsnn.neurons import reset


def test_registered_depths_and_shapes():
    assert {"lorafb_snet18", "lorafb_snet34", "lorafb_snet50", "lorafb_snet101", "lorafb_snet152",
            "lorafb_cnet18"} <= set(list_models("lorafb*"))
    model = create_model("lorafb_snet18", num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.rand(3, 2, 3, 33, 33))  # odd size: the feedback upsampling must match
    assert out.shape == (3, 2, 10)


def test_parameter_count_is_backbone_plus_feedback_by_hand():
    backbone = sum(p.numel() for p in create_model("sew_resnet18", num_classes=10).parameters())
    extra = 0
    for c_in, c_out, up in [(64, 64, False), (64, 128, True), (128, 256, True), (256, 512, True)]:
        extra += (c_in + c_out) * c_in + 2 * c_in  # pwconv + bn
        if up:
            extra += c_out * 9 + 2 * c_out  # depthwise transposed conv + bn1
    model = create_model("lorafb_snet18", num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == backbone + extra


def test_state_dict_layout_of_the_seed():
    keys = create_model("lorafb_snet18").state_dict().keys()
    assert "recurrent_layer1.pwconv.weight" in keys and "recurrent_layer1.bn.running_var" in keys
    assert "recurrent_layer1.dwconv.weight" not in keys  # stage 1: identity feedback
    assert "recurrent_layer3.dwconv.weight" in keys and "recurrent_layer3.bn1.weight" in keys
    assert "recurrent_layer4.sub_module.1.conv2.weight" in keys and "fc.weight" in keys
    assert create_model("lorafb_snet18").scoring_layers[2] == "recurrent_layer1.sub_module.0"


def _excite(model, gain=3.0):
    """Batch-norm gains that keep a random spiking network active down to its last stage."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.fill_(gain)


def _unrolled_stage(stage, x):
    """The feedback recurrence written out by hand for a ReLU (stateless) stage."""
    outputs, previous = [], None
    for t in range(x.shape[0]):
        if previous is None:
            size = [(s + stage.stride - 1) // stage.stride for s in x.shape[-2:]]
            previous = torch.zeros(x.shape[1], stage.c_out, *size, dtype=x.dtype)
        if stage.stride == 1:
            feedback = previous
        else:
            up = torch.nn.functional.conv_transpose2d(previous, stage.dwconv.weight, stride=2, padding=1,
                                                      output_padding=1, groups=stage.c_out)
            up = up[..., : x.shape[-2], : x.shape[-1]]
            feedback = torch.relu(torch.nn.functional.batch_norm(
                up, stage.bn1.running_mean, stage.bn1.running_var, stage.bn1.weight, stage.bn1.bias, False))
        fused = torch.nn.functional.conv2d(torch.cat([x[t], feedback], 1), stage.pwconv.weight)
        fused = torch.relu(torch.nn.functional.batch_norm(
            fused, stage.bn.running_mean, stage.bn.running_var, stage.bn.weight, stage.bn.bias, False))
        previous = stage.sub_module(fused.unsqueeze(0))[0]
        outputs.append(previous)
    return torch.stack(outputs)


@pytest.mark.parametrize("index", [1, 2])
def test_feedback_wiring_by_hand(index):
    torch.manual_seed(0)
    model = create_model("lorafb_cnet18", num_classes=5).eval().double()  # float64: exact to rounding
    stage = getattr(model, f"recurrent_layer{index}")
    with torch.no_grad():
        for bn in (m for m in stage.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
        channels = 64
        x = torch.rand(3, 2, channels, 16, 16, dtype=torch.float64)
        expected = _unrolled_stage(stage, x)
        got = stage(x)
    torch.testing.assert_close(got, expected)
    # with one step the feedback is zero: the output equals the fusion on [x, 0] then the stage
    with torch.no_grad():
        reset(stage)
        single = stage(x[:1])
        torch.testing.assert_close(single[0], expected[0])
        # the stage keeps its last output as state: the next call continues the sequence
        torch.testing.assert_close(stage(x[1:2])[0], expected[1])
        reset(stage)
        assert not torch.allclose(expected[1], stage(x[1:2])[0])  # step 2 depends on step 1's output


def test_spiking_variant_trains_and_checkpoints_round_trip(tmp_path):
    model = create_model("lorafb_snet18", num_classes=4)
    x = torch.rand(2, 2, 3, 32, 32) * 3
    loss = model(x).mean(0).logsumexp(-1).sum()
    loss.backward()
    assert model.recurrent_layer2.dwconv.weight.grad is not None
    fresh = create_model("lorafb_snet18", num_classes=4)
    load_weights(fresh, model.state_dict())
    assert isinstance(fresh.recurrent_layer1.sub_module[0], BasicBlock)


def test_cnet_blocks_are_plain_residual_blocks():
    """LoRaFB-CNet (the seed's ConvRecurrent + torchvision blocks): relu(bn2(conv2(.)) + downsample(x))."""
    torch.manual_seed(3)
    model = create_model("lorafb_cnet18", num_classes=3).eval()
    block = model.recurrent_layer2.sub_module[0]
    assert not hasattr(block, "downsample_sn")
    x = torch.rand(1, 2, 64, 8, 8)
    f = torch.nn.functional

    def bn(layer, z):
        return f.batch_norm(z, layer.running_mean, layer.running_var, layer.weight, layer.bias, False)

    with torch.no_grad():
        out = torch.relu(bn(block.bn1, f.conv2d(x[0], block.conv1.weight, stride=2, padding=1)))
        out = bn(block.bn2, f.conv2d(out, block.conv2.weight, padding=1))
        identity = bn(block.downsample[1], f.conv2d(x[0], block.downsample[0].weight, stride=2))
        torch.testing.assert_close(block(x)[0], torch.relu(out + identity))


@pytest.mark.parametrize("name", ["lorafb_snet18", "lorafb_cnet18"])
def test_movie_in_chunks_equals_one_sequence(name):
    torch.manual_seed(4)
    model = create_model(name, num_classes=4).eval()
    _excite(model)
    x = torch.rand(4, 1, 3, 32, 32) * 3
    with torch.no_grad():
        whole = model(x)
        assert not torch.allclose(whole[0], whole[-1])  # the output changes over time
        model.stateful = True
        reset(model)
        parts = torch.cat([model(x[:2]), model(x[2:])])
    torch.testing.assert_close(parts, whole)
    with torch.no_grad():  # without reset the feedback of the previous chunk is still there
        assert not torch.allclose(model(x[:2]), whole[:2])


def test_checkpointed_stages_give_the_same_gradients():
    torch.manual_seed(5)
    plain = create_model("lorafb_snet18", num_classes=4)
    lean = create_model("lorafb_snet18", num_classes=4, checkpoint_stages=True)
    _excite(plain)
    lean.load_state_dict(plain.state_dict())
    x = torch.rand(2, 2, 3, 32, 32) * 3
    outputs = []
    for model in (plain, lean):
        out = model(x)
        out.mean(0).logsumexp(-1).sum().backward()
        outputs.append(out)
    assert not torch.allclose(outputs[0][0], outputs[0][-1])  # active down to the classifier
    torch.testing.assert_close(outputs[1], outputs[0])
    for (name, a), b in zip(plain.named_parameters(), lean.parameters()):
        torch.testing.assert_close(b.grad, a.grad, msg=name)
    for (name, a), b in zip(plain.named_buffers(), lean.buffers()):
        torch.testing.assert_close(b, a, msg=name)  # batch-norm statistics updated once


def test_stem_batch_norm_statistics_per_step_in_training():
    model = create_model("lorafb_snet18", num_classes=4).train()
    x = torch.rand(2, 3, 3, 32, 32)
    x[1] += 5.0  # two steps with very different statistics
    seen = {}
    model.bn1.register_forward_hook(lambda m, i, o: seen.__setitem__("bn1", o))
    model(x)
    per_step_mean = seen["bn1"].mean(dim=(1, 3, 4))
    torch.testing.assert_close(per_step_mean, torch.zeros_like(per_step_mean), atol=1e-5, rtol=0)
