import pytest
import torch

from fctlib.models import ModelSpec, build_backbone, build_model


@pytest.mark.parametrize("arch", ["small_cnn", "resnet18", "resnet50"])
@pytest.mark.parametrize("channels", [1, 3])
def test_embedding_and_logit_shapes(arch, channels):
    model = build_model(ModelSpec(arch=arch, embedding_dim=48), channels, num_classes=7)
    embedding, logits = model(torch.randn(2, channels, 32, 32))
    assert embedding.shape == (2, 48) and logits.shape == (2, 7)
    assert model.classifier.bias is None


@pytest.mark.parametrize("arch", ["small_cnn", "resnet18", "resnet50"])
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
