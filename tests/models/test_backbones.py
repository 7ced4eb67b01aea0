import dataclasses

import pytest
import torch

import fctlib.methods  # noqa: F401  (registers the methods' preset sections)
from fctlib.experiment.config import load_preset, preset_names
from fctlib.models.backbones import CosineClassifier, build_backbone, build_model
from fctlib.models.spec import ModelSpec
from fctlib.training.runtime import narrow_strided_1x1_convolutions

PRESETS = preset_names()


@pytest.mark.parametrize("arch", ["small_cnn", "small_resnet", "resnet18", "resnet50"])
@pytest.mark.parametrize("channels", [1, 3])
def test_embedding_and_logit_shapes(arch, channels):
    model = build_model(ModelSpec(arch=arch, embedding_dim=48), channels, num_classes=7)
    embedding, logits = model(torch.randn(2, channels, 32, 32))
    assert embedding.shape == (2, 48) and logits.shape == (2, 7)
    assert model.classifier.bias is None


@pytest.mark.parametrize("arch", ["small_cnn", "small_resnet", "resnet18", "resnet50"])
def test_embedding_relu_option(arch):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    kept = build_backbone(ModelSpec(arch=arch, embedding_relu=True), 3).eval()(x)
    plain = build_backbone(ModelSpec(arch=arch, embedding_relu=False), 3).eval()(x)
    assert (kept >= 0).all()
    assert (plain < 0).any()


def test_resnet_last_block_outputs_embedding_channels():
    net = build_backbone(ModelSpec(arch="resnet50", embedding_dim=128), 3)
    assert net.layer4[-1].conv3.out_channels == 128
    assert net.layer4[-1].downsample[0].out_channels == 128


def test_small_input_stem_keeps_resolution():
    small = build_backbone(ModelSpec(arch="resnet18", small_input_stem=True), 3)
    imagenet = build_backbone(ModelSpec(arch="resnet18", small_input_stem=False), 3)
    assert small.conv1.stride == (1, 1) and isinstance(small.maxpool, torch.nn.Identity)
    assert imagenet.conv1.stride == (2, 2)


def test_bad_spec():
    with pytest.raises(ValueError, match="unknown arch"):
        ModelSpec(arch="vgg")


def test_small_resnet_is_residual_and_larger_than_small_cnn_of_half_width():
    resnet = build_backbone(ModelSpec(arch="small_resnet", width=16), 1)
    cnn = build_backbone(ModelSpec(arch="small_cnn", width=8), 1)
    blocks = [m for m in resnet.modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 6
    size = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert size(resnet) > 10 * size(cnn)


def test_cosine_classifier_is_scaled_cosine():
    torch.manual_seed(0)
    model = build_model(ModelSpec(embedding_dim=8), 1, num_classes=5, cosine_scale=16.0)
    assert isinstance(model.classifier, CosineClassifier)
    with torch.no_grad():
        embedding, logits = model(torch.randn(3, 1, 28, 28))
    w = model.classifier.weight.detach()
    for i in range(3):
        for c in range(5):
            cos = float(embedding[i] @ w[c] / (embedding[i].norm() * w[c].norm()))
            assert abs(float(logits[i, c]) - 16.0 * cos) < 1e-4
    # rescaling an embedding leaves its logits unchanged: only directions are learnt
    assert torch.allclose(model.classifier(3 * embedding), logits, atol=1e-5)
    with pytest.raises(ValueError, match="scale"):
        CosineClassifier(8, 5, scale=0)


def model_specs(node):
    """Every ModelSpec in a preset's settings (dataclasses, dicts and lists of them)."""
    if isinstance(node, ModelSpec):
        yield node
    elif dataclasses.is_dataclass(node):
        for item in dataclasses.fields(node):
            yield from model_specs(getattr(node, item.name))
    elif isinstance(node, dict):
        for value in node.values():
            yield from model_specs(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from model_specs(value)


@pytest.mark.parametrize("name", PRESETS)
def test_no_preset_network_has_a_narrow_strided_1x1_convolution(name):
    """oneDNN 3.12 (torch 2.14.1) computes the weight gradient of a 1x1 stride-2 convolution in
    channels-last past its workspace when it has fewer input channels than its vector block (8
    on AVX2, 16 on AVX-512; uxlfoundation/oneDNN#6035): on an AVX2 CPU the smoke preset's width-4
    ResNet hung or crashed the test run once torch.compile laid it out channels-last. fctlib now
    trains such a network eagerly on a CPU and refuses FCT_CPU_CHANNELS_LAST=1 for it; no shipped
    preset needs either."""
    preset = load_preset(name)
    sections = [preset, *(preset.method(method) for method in preset.methods)]
    specs = [spec for section in sections for spec in model_specs(section)]
    assert specs
    for spec in specs:
        assert not narrow_strided_1x1_convolutions(build_backbone(spec, 3)), spec
