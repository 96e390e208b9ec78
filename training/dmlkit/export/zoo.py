"""The backbone zoo: torchvision and timm architectures with a 128-d embedding head, as metric-learning users
build them, for the exporter's parity tests (small inputs) and ``make zoo`` (full size).

Weights are random (``weights=None`` / ``pretrained=False``); :func:`calibrate_batchnorm` re-estimates
BatchNorm statistics on random batches, since the default statistics map every input to nearly the same
embedding and parity would mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

EMBEDDING_DIM = 128


@dataclass(frozen=True)
class Architecture:
    """One zoo entry: how to build it, its full input size, and the small size the tests use."""

    name: str
    library: str  # "torchvision" or "timm"
    make: Callable[[bool], nn.Module]  # small -> model (small: fewer layers where the width makes files large)
    size: int = 224  # full input size (make zoo)
    test_size: int = 64  # input size in the tests


def _tv(name: str, **kwargs) -> Callable[[bool], nn.Module]:
    def make(small: bool) -> nn.Module:
        import torchvision.models as tvm

        return getattr(tvm, name)(weights=None, num_classes=EMBEDDING_DIM, **kwargs)
    return make


def _squeezenet(small: bool) -> nn.Module:
    import torchvision.models as tvm

    model = tvm.squeezenet1_1(weights=None)
    # The classifier's 1x1 conv to 1000 classes + ReLU becomes a 1x1 conv to the embedding (no ReLU: signed).
    model.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, EMBEDDING_DIM, 1), nn.AdaptiveAvgPool2d(1))
    return model


def _vit_b_16(small: bool) -> nn.Module:
    import torchvision.models as tvm
    from torchvision.models.vision_transformer import VisionTransformer

    if not small:
        model = tvm.vit_b_16(weights=None)
    else:  # ViT-B/16's widths (768, 12 heads, MLP 3072) with 2 of its 12 encoder layers, at 64 px
        model = VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=12, hidden_dim=768, mlp_dim=3072)
    model.heads.head = nn.Linear(model.hidden_dim, EMBEDDING_DIM)
    return model


def _timm(name: str, small_kwargs: dict | None = None) -> Callable[[bool], nn.Module]:
    def make(small: bool) -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False, num_classes=EMBEDDING_DIM, **((small_kwargs or {}) if small else {}))
    return make


ARCHITECTURES = [
    Architecture("resnet18", "torchvision", _tv("resnet18")),
    Architecture("resnet50", "torchvision", _tv("resnet50")),
    Architecture("densenet121", "torchvision", _tv("densenet121")),
    Architecture("inception_v3", "torchvision", _tv("inception_v3", aux_logits=False, init_weights=True), size=299, test_size=96),
    Architecture("googlenet", "torchvision", _tv("googlenet", aux_logits=False, init_weights=True)),
    Architecture("mobilenet_v2", "torchvision", _tv("mobilenet_v2")),
    Architecture("mobilenet_v3_small", "torchvision", _tv("mobilenet_v3_small")),
    Architecture("mobilenet_v3_large", "torchvision", _tv("mobilenet_v3_large")),
    Architecture("efficientnet_b0", "torchvision", _tv("efficientnet_b0")),
    Architecture("regnet_y_400mf", "torchvision", _tv("regnet_y_400mf")),
    Architecture("shufflenet_v2_x1_0", "torchvision", _tv("shufflenet_v2_x1_0")),
    Architecture("squeezenet1_1", "torchvision", _squeezenet),
    Architecture("convnext_tiny", "torchvision", _tv("convnext_tiny")),
    Architecture("vit_b_16", "torchvision", _vit_b_16),
    Architecture("vit_small_patch16_224", "timm", _timm("vit_small_patch16_224", {"img_size": 64, "depth": 4})),
    Architecture("efficientnet_lite0", "timm", _timm("efficientnet_lite0")),
    Architecture("mobilenetv3_small_100", "timm", _timm("mobilenetv3_small_100")),
    Architecture("mobilenetv3_large_100", "timm", _timm("mobilenetv3_large_100")),
]
BY_NAME = {a.name: a for a in ARCHITECTURES}


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, shape: tuple[int, ...], batches: int = 3, batch_size: int = 8,
                        seed: int = 0) -> nn.Module:
    """Re-estimates every BatchNorm's running statistics (cumulative average) on random normal batches, then
    switches the model to eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    if norms:
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(batches):
            model(torch.randn(batch_size, *shape, generator=generator))
    return model.eval()


def build(name: str, small: bool = False, seed: int = 0) -> tuple[nn.Module, int]:
    """The named architecture with seeded random weights and calibrated BatchNorm, in eval mode, and its
    input size (``test_size`` when ``small``)."""
    arch = BY_NAME[name]
    torch.manual_seed(seed)
    model = arch.make(small)
    size = arch.test_size if small else arch.size
    calibrate_batchnorm(model, (3, size, size), seed=seed)
    return model, size
