"""Embedding networks (torchvision ResNets, a small CNN and a small residual network) with a
bias-free linear classifier, or a cosine one (normalized softmax)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet

from fctlib.models.spec import ModelSpec

RESNETS = {
    "resnet18": resnet.resnet18,
    "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
    "resnet101": resnet.resnet101,
}
def _resnet_backbone(spec: ModelSpec, in_channels: int) -> nn.Module:
    """A torchvision ResNet whose last block outputs `embedding_dim` channels, average-pooled."""
    net = RESNETS[spec.arch](weights=None)
    if spec.small_input_stem:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    last = net.layer4[-1]
    in_planes = last.conv1.in_channels
    if isinstance(last, resnet.Bottleneck):
        last.conv3 = nn.Conv2d(last.conv3.in_channels, spec.embedding_dim, 1, bias=False)
        last.bn3 = nn.BatchNorm2d(spec.embedding_dim)
    else:
        last.conv2 = nn.Conv2d(last.conv2.in_channels, spec.embedding_dim, 3, padding=1, bias=False)
        last.bn2 = nn.BatchNorm2d(spec.embedding_dim)
    if in_planes != spec.embedding_dim:
        last.downsample = nn.Sequential(
            nn.Conv2d(in_planes, spec.embedding_dim, 1, bias=False),
            nn.BatchNorm2d(spec.embedding_dim),
        )
    if not spec.embedding_relu:
        net.layer4[-1] = _PreActivationOutput(last)
    net.fc = nn.Identity()
    return net


class _PreActivationOutput(nn.Module):
    """A ResNet block computed without its final ReLU, so the embedding can take negative values."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        out = b.relu(b.bn1(b.conv1(x)))
        if isinstance(b, resnet.Bottleneck):
            out = b.bn3(b.conv3(b.relu(b.bn2(b.conv2(out)))))
        else:
            out = b.bn2(b.conv2(out))
        identity = x if b.downsample is None else b.downsample(x)
        return out + identity


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def _embedding_head(channels: int, spec: ModelSpec) -> list[nn.Module]:
    """1x1 projection to the embedding, batch norm, the optional ReLU, average pooling."""
    layers = [nn.Conv2d(channels, spec.embedding_dim, 1, bias=False),
              nn.BatchNorm2d(spec.embedding_dim)]
    if spec.embedding_relu:
        layers.append(nn.ReLU())
    return [*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()]


class SmallCNN(nn.Module):
    """A fast CNN for CPU presets: width at full resolution, 2x width at 1/2, 4x at 1/4, then a
    1x1 projection to the embedding and average pooling."""

    def __init__(self, spec: ModelSpec, in_channels: int):
        super().__init__()
        w = spec.width
        layers = [*_conv_bn_relu(in_channels, w), nn.MaxPool2d(2)]
        layers += [*_conv_bn_relu(w, 2 * w), *_conv_bn_relu(2 * w, 2 * w), nn.MaxPool2d(2)]
        layers += [*_conv_bn_relu(2 * w, 4 * w), *_embedding_head(4 * w, spec)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SmallResNet(nn.Module):
    """A small residual network for CPU presets (another family than SmallCNN): a 3x3 stem of
    `width` channels, then two torchvision basic blocks at each of width, 2x width (1/2
    resolution) and 4x width (1/4), a 1x1 projection to the embedding and average pooling."""

    def __init__(self, spec: ModelSpec, in_channels: int):
        super().__init__()
        w = spec.width
        layers = _conv_bn_relu(in_channels, w)
        for cin, cout, stride in ((w, w, 1), (w, 2 * w, 2), (2 * w, 4 * w, 2)):
            shortcut = None if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            layers += [resnet.BasicBlock(cin, cout, stride, shortcut),
                       resnet.BasicBlock(cout, cout)]
        self.body = nn.Sequential(*layers, *_embedding_head(4 * w, spec))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def build_backbone(spec: ModelSpec, in_channels: int) -> nn.Module:
    """The embedding network alone: images (B, C, H, W) -> embeddings (B, embedding_dim)."""
    if spec.arch == "small_cnn":
        return SmallCNN(spec, in_channels)
    if spec.arch == "small_resnet":
        return SmallResNet(spec, in_channels)
    return _resnet_backbone(spec, in_channels)


class EmbeddingClassifier(nn.Module):
    """A backbone plus a bias-free linear classifier; forward returns (embedding, logits)."""

    def __init__(self, backbone: nn.Module, embedding_dim: int, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(embedding_dim, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.backbone(x)
        return embedding, self.classifier(embedding)


class UnitEmbedding(nn.Module):
    """A backbone whose embedding is L2-normalised (BT-2's and OCA's `norm_feature: True`)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.backbone(x), dim=1)


class CosineClassifier(nn.Module):
    """The normalized-softmax classifier (NormFace): `scale` x the cosine between the embedding
    and each class's weight row, so only directions are learnt."""

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 16.0):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale = scale
        self.weight = nn.Parameter(torch.randn(num_classes, embedding_dim) * 0.01)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        cosine = nn.functional.normalize(embedding, dim=1) @ nn.functional.normalize(
            self.weight, dim=1).T
        return self.scale * cosine


class KernelNormClassifier(nn.Module):
    """openBCT's `--use-norm-sm` classifier as its code computes it (models/resnet.py @69e798c):
    a (d x classes) kernel normalised along its second axis (each feature dimension across the
    classes, not each class's row), the products with the normalised embedding clamped to
    [-1, 1], times `scale`; the kernel starts uniform in [-1, 1] with unit columns, as there."""

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 30.0):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale = scale
        kernel = torch.empty(embedding_dim, num_classes).uniform_(-1, 1)
        self.kernel = nn.Parameter(kernel.renorm_(2, 1, 1e-5).mul_(1e5))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        products = nn.functional.normalize(embedding, dim=1) @ nn.functional.normalize(
            self.kernel, dim=1)
        return self.scale * products.clamp(-1, 1)


def build_model(spec: ModelSpec, in_channels: int, num_classes: int,
                cosine_scale: float | None = None) -> EmbeddingClassifier:
    """An embedding network with its classifier, as trained by the suite's old and new models;
    with `cosine_scale` the classifier is a CosineClassifier (normalized softmax)."""
    model = EmbeddingClassifier(build_backbone(spec, in_channels), spec.embedding_dim, num_classes)
    if cosine_scale is not None:
        model.classifier = CosineClassifier(spec.embedding_dim, num_classes, cosine_scale)
    return model
