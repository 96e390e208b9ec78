"""The four small reference networks and the golden files the Swift runtime tests read.

    python -m dmlkit.export.fixtures Tests/Fixtures/runtime

writes, per network, ``NAME-f32/-f16/-int8.safetensors`` and ``NAME.golden.safetensors`` (17 inputs and the
PyTorch float32 outputs). Seeds are fixed, so rerunning gives the same files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .writer import _outputs, export_model, write_golden

GOLDEN_BATCH = 17
CNN_PREPROCESSING = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "channel_order": "rgb"}


def _randomise_batchnorm(module: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial running statistics so BatchNorm folding is actually exercised."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)


class MLP(nn.Module):
    """Linear stack with BatchNorm1d (folded), LeakyReLU, dropout, GELU (tanh and erf), LayerNorm, Tanh, Sigmoid."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(32, 64), nn.BatchNorm1d(64)
        self.act1, self.drop = nn.LeakyReLU(0.1), nn.Dropout(0.3)
        self.fc2, self.act2, self.norm = nn.Linear(64, 64), nn.GELU(approximate="tanh"), nn.LayerNorm(64)
        self.fc3, self.fc4 = nn.Linear(64, 48), nn.Linear(48, 16)

    def forward(self, x):
        x = self.drop(self.act1(self.bn1(self.fc1(x))))
        x = self.norm(self.act2(self.fc2(x)))
        x = torch.tanh(F.gelu(self.fc3(x)))
        return torch.sigmoid(self.fc4(x))


class SmallCNN(nn.Module):
    """Conv-BN-activation blocks with max and average pooling, global pooling and a linear head."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.SiLU(), nn.AvgPool2d(3, stride=2, padding=1),
            nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(16, 24)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


class ResNetStyle(nn.Module):
    """Strided stem, an identity residual block, a downsampling block with depthwise + pointwise convs and a
    strided 1x1 shortcut, BatchNorm after the residual add (not foldable), a grouped dilated conv, concat,
    spatial mean, linear and L2 normalisation."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.conv1, self.bn1 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.dw, self.bn_dw = nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16, bias=False), nn.BatchNorm2d(16)
        self.pw, self.bn_pw = nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32)
        self.short, self.bn_short = nn.Conv2d(16, 32, 1, stride=2, bias=False), nn.BatchNorm2d(32)
        self.bn_post = nn.BatchNorm2d(32)
        self.dilated = nn.Conv2d(32, 32, 3, padding=2, dilation=2, groups=4)
        self.fc = nn.Linear(64, 32)

    def forward(self, x):
        x = self.stem(x)
        y = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(y)) + x)
        y = self.bn_pw(self.pw(F.relu(self.bn_dw(self.dw(x)))))
        x = F.relu(self.bn_post(y + self.bn_short(self.short(x))))
        x = torch.cat([x, F.relu(self.dilated(x))], dim=1)
        return F.normalize(self.fc(x.mean((2, 3))), dim=1)


class MultiHead(nn.Module):
    """A shared conv backbone with three embedding heads (low/mid/high, as in RLL), each L2-normalised;
    the runtime concatenates the three outputs."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.GELU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.low = nn.Linear(32, 8)
        self.mid = nn.Sequential(nn.Linear(32, 16), nn.SiLU(), nn.Linear(16, 8))
        self.high = nn.Sequential(nn.Linear(32, 8), nn.LayerNorm(8))

    def forward(self, x):
        f = self.backbone(x)
        return F.normalize(self.low(f)), F.normalize(self.mid(f)), F.normalize(self.high(f))


class OpsCoverage(nn.Module):
    """The remaining ops and code paths in one net: asymmetric kernel and stride, a depthwise conv with channel
    multiplier, padded + dilated max pooling, average pooling that leaves padding out of the count, global max
    pooling, BatchNorm that cannot be folded (after tanh), LeakyReLU/Sigmoid/Tanh on feature maps, view, a linear
    layer over the last dim of a 3-D tensor, exact GELU, LayerNorm over two dims, a ReLU fused into a linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, (3, 1), stride=(2, 1), padding=(1, 0))
        self.dw = nn.Conv2d(8, 16, 3, padding=1, groups=8)
        self.pool_max = nn.MaxPool2d(3, stride=1, padding=1, dilation=2)
        self.bn = nn.BatchNorm2d(16)
        self.pool_avg = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.token = nn.Linear(32, 12)
        self.norm = nn.LayerNorm([16, 12])
        self.fc = nn.Linear(16 * 12, 20)
        self.out = nn.Linear(16 + 20, 10)

    def forward(self, x):  # x: [N, 3, 12, 10]
        x = F.leaky_relu(self.conv(x), 0.2)  # [8, 6, 10]
        x = torch.sigmoid(self.dw(x))  # [16, 6, 10]
        x = self.bn(torch.tanh(self.pool_max(x)))  # [16, 4, 8]
        a = torch.flatten(F.adaptive_max_pool2d(self.pool_avg(x), 1), 1)  # [16]
        t = self.norm(F.gelu(self.token(x.view(x.size(0), 16, 32))))  # [16, 12]
        b = F.relu(self.fc(torch.flatten(t, 1)))  # [20]
        return torch.tanh(self.out(torch.cat([a, b], dim=1)))


def _pixels_to_input(pixels: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """What the runtime's preprocessing computes, written with torch ops."""
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(torch.float32)
    if tuple(x.shape[2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    mean = torch.tensor(CNN_PREPROCESSING["mean"]).reshape(1, 3, 1, 1)
    std = torch.tensor(CNN_PREPROCESSING["std"]).reshape(1, 3, 1, 1)
    return (x * (1.0 / 255.0) - mean) / std


def build(name: str, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """One reference network (seeded weights, randomised BatchNorm statistics) and its golden input batch."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    module, shape = {
        "mlp": (MLP, (32,)), "cnn": (SmallCNN, (3, 16, 16)),
        "resnet": (ResNetStyle, (3, 16, 16)), "multihead": (MultiHead, (3, 12, 12)), "ops": (OpsCoverage, (3, 12, 10)),
    }[name]
    model = module()
    _randomise_batchnorm(model, generator)
    model.eval()
    return model, torch.randn(GOLDEN_BATCH, *shape, generator=generator)


def write_fixtures(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("mlp", "cnn", "resnet", "multihead"):
        model, x = build(name)
        pre = CNN_PREPROCESSING if name == "cnn" else None
        for dtype in ("f32", "f16", "int8"):
            export_model(model, x, directory / f"{name}-{dtype}.safetensors", dtype=dtype, preprocessing=pre,
                         golden_path=directory / f"{name}.golden.safetensors" if dtype == "f32" else None)
    # Op coverage: f32 only, checked to 1e-4 like the other f32 models.
    model, x = build("ops")
    export_model(model, x, directory / "ops-f32.safetensors", golden_path=directory / "ops.golden.safetensors")
    # The small CNN again with BatchNorm left in the file: the runtime folds it at load.
    model, x = build("cnn")
    export_model(model, x, directory / "cnn-unfolded-f32.safetensors", preprocessing=CNN_PREPROCESSING, fold_batchnorm=False)
    # Pixel goldens for the CNN's preprocessing: native size, and an odd size the runtime resizes.
    rng = np.random.default_rng(7)
    extra = {}
    for key, (h, w) in (("pixels", (16, 16)), ("pixels_resized", (21, 13))):
        pixels = rng.integers(0, 256, size=(GOLDEN_BATCH, h, w, 3), dtype=np.uint8)
        extra[key] = pixels
        extra[key + "_output"] = _outputs(model, _pixels_to_input(pixels, (16, 16)))
    write_golden(directory / "cnn-pixels.golden.safetensors", _pixels_to_input(extra["pixels"], (16, 16)),
                 extra["pixels_output"], extra)


if __name__ == "__main__":
    write_fixtures(Path(sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/runtime"))
