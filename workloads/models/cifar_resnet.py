"""CIFAR-10 ResNet-20/32/44/56 (He et al. 2016, option-A shortcuts) matching the akamaster checkpoints.

Architecture: conv1 16x3x3x3 + BN + ReLU; three stages of n BasicBlocks (16/32/64 channels; 3x3 convs
without bias, BN, ReLU); option-A shortcut (spatial subsample by 2, zero-pad C/4 channels on each side);
global average pool; FC 64 -> 10. Depth = 6n + 2. The forward pass is ``torch.fx`` traceable.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..layer import WorkloadError

CIFAR_MEAN = (0.485, 0.456, 0.406)  # what akamaster's trainer.py normalizes with
CIFAR_STD = (0.229, 0.224, 0.225)


class ShortcutA(nn.Module):
    """Option-A shortcut: subsample by 2 in space, zero-pad ``pad`` channels before and after."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut: nn.Module = ShortcutA(planes // 4)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int = 20, num_classes: int = 10):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 (20, 32, 44, 56, ...), got {depth}")
        n = (depth - 2) // 6
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        stages = []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)
        return self.linear(out)


def cifar_preprocess(images: np.ndarray) -> torch.Tensor:
    """uint8 RGB (N, H, W, 3) -> float32 (N, 3, H, W): x / 255, normalized with CIFAR_MEAN / CIFAR_STD."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (N, H, W, 3), got {images.dtype} {images.shape}")
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    mean = torch.tensor(CIFAR_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


def _torch_error(exc: BaseException) -> str:
    """The informative line of a torch.load error (its weights-only errors span many lines of advice)."""
    marker = "WeightsUnpickler error:"
    if marker in str(exc):  # "... advice ... WeightsUnpickler error: \n\nUnsupported operand 110\n\n... advice ..."
        rest = [line.strip() for line in str(exc).split(marker, 1)[1].splitlines() if line.strip()]
        return f"weights-only unpickler: {rest[0]}" if rest else "weights-only unpickler error"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_cifar_resnet(depth: int, checkpoint_path: str | os.PathLike) -> nn.Module:
    """A CifarResNet of ``depth`` in eval mode with the checkpoint's weights (``{'state_dict', ...}``,
    keys prefixed ``module.``), loaded with ``weights_only=True``. Every parameter and BN statistic must
    match (only ``num_batches_tracked``, absent from these checkpoints, may be missing) and be finite floats.
    A file that cannot be read as such a checkpoint raises one WorkloadError naming it."""
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    what = f"a resnet{depth} checkpoint"
    try:
        with warnings.catch_warnings():  # a damaged pickle header makes torch warn before it fails
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError, UnicodeDecodeError, ...
        raise WorkloadError(f"{path}: cannot load {what} ({_torch_error(exc)})") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise WorkloadError(f"{path}: not a state-dict checkpoint (got {type(ckpt).__name__})")
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    model = CifarResNet(depth)
    expected = model.state_dict()
    for k, v in state.items():
        if k in expected and not isinstance(v, torch.Tensor):
            raise WorkloadError(f"{path}: {k} is a {type(v).__name__}, not a tensor")
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        raise WorkloadError(
            f"{path}: checkpoint does not match ResNet-{depth}: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}, wrong shapes {wrong[:5]}"
        )
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise WorkloadError(f"{path}: {k} holds NaN or infinite values")
        if k.endswith("num_batches_tracked"):
            continue
        if not v.is_floating_point():
            raise WorkloadError(f"{path}: {k} holds {v.dtype} values, not floats")
    model.load_state_dict(state, strict=False)
    return model.eval()
