"""The networks everything else is built on, and the one loader of local weights files.

`build(arch, in_channels, num_classes)` gives:
- `small`: the small ResNet of the ManiFPT authors' released script (3 stages of basic blocks with
  16/32/64 channels, global pooling), for CPU runs on small images;
- `resnet18`, `resnet50`: torchvision's;
- `inception_v3`: torchvision's, without the auxiliary head.
Each comes as a `Trunk`: `.features(x)` (the pooled penultimate vector, `.dim` wide) and `.head`
(a linear layer to `num_classes`, or Identity when num_classes is None).

`load_weights(module, path)` reads a state dict from a local file (never downloaded, never unpickled:
`torch.load(weights_only=True)`), unwraps {"state_dict": ...}, strips the `module.` (DataParallel) and
`backbone.` (self-supervised checkpoints) prefixes, and reports missing, unexpected and mis-shaped
keys by name instead of loading half a network.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

ARCHS = ("small", "resnet18", "resnet50", "inception_v3")
_PREFIXES = ("module.", "backbone.")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# What `manifpt ssl-pretrain` writes: {"format": this, "arch", "state_dict", "input_size", "losses"}.
SSL_BACKBONE_FORMAT = "manifpt-ssl-backbone-v1"


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std with the ImageNet statistics, for (B, 3, H, W) images in [0, 1]: the input
    every ImageNet-trained backbone expects."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.skip = (
            nn.Identity() if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


class SmallResNet(nn.Module):
    """3 stages x `blocks` basic blocks, 16/32/64 channels (a CIFAR-style ResNet, as the authors' script)."""

    def __init__(self, in_channels: int, num_classes: int, blocks: int = 3):
        super().__init__()
        layers = [nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)]
        cin = 16
        for stage, cout in enumerate((16, 32, 64)):
            for b in range(blocks):
                layers.append(_Block(cin, cout, 2 if (b == 0 and stage > 0) else 1))
                cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


class Trunk(nn.Module):
    """A feature extractor and a head: the shape every trained network here has. `head` is a module, or a
    number of classes for a new linear head (None: no head, the features themselves)."""

    def __init__(self, features: nn.Module, dim: int, head: nn.Module | int | None):
        super().__init__()
        self.features = features
        self.dim = dim
        self.head = head if isinstance(head, nn.Module) else nn.Linear(dim, head) if head else nn.Identity()

    def forward(self, x):
        return self.head(self.features(x))


def torchvision_model(arch: str) -> nn.Module:
    """A torchvision network with random weights (its own init), ready for load_weights."""
    import torchvision

    if arch == "inception_v3":
        return torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True)
    if arch in ("resnet18", "resnet50"):
        return getattr(torchvision.models, arch)(weights=None)
    raise ValueError(f"unknown torchvision arch {arch!r}: choose from resnet18, resnet50, inception_v3")


def build(arch: str, in_channels: int = 3, num_classes: int | None = None, weights: str | os.PathLike | None = None) -> Trunk:
    """A Trunk of `arch`; `weights` (a local file of the torchvision network) is loaded before the head is replaced.
    With in_channels != 3 a ResNet's first convolution is rebuilt, keeping the mean of its RGB filters."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}: choose from {', '.join(ARCHS)}")
    if arch == "small":
        if weights is not None:
            raise ValueError("the small ResNet has no pretrained weights file")
        net = SmallResNet(in_channels, num_classes or 1)
        return Trunk(net.features, 64, net.head if num_classes else None)
    model = torchvision_model(arch)
    if weights is not None:
        load_weights(model, weights, ignore=("fc.", "AuxLogits."))
    dim = model.fc.in_features
    model.fc = nn.Identity()
    if in_channels != 3:
        if arch == "inception_v3":
            raise ValueError("inception_v3 takes 3-channel images only")
        w = model.conv1.weight.data.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1) * (3 / in_channels)
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        model.conv1.weight.data.copy_(w)
    return Trunk(model, dim, num_classes)


def read_state_dict(path: str | os.PathLike) -> dict:
    """The dict stored in a local weights file, read without unpickling arbitrary objects. A plain state dict
    comes back with its `module.` / `backbone.` prefixes stripped; a dict with a "format" key (manifpt's own
    files) comes back as it is."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"weights file {path} is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file: say which and why
        raise ValueError(f"cannot read weights file {path} as a torch state dict: {type(e).__name__}: {e}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) and "format" not in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"weights file {path} holds a {type(obj).__name__}, not a state dict")
    if "format" in obj:
        return obj
    out = {}
    for k, v in obj.items():
        for p in _PREFIXES:
            k = k.removeprefix(p)
        out[k] = v
    return out


def load_weights(module: nn.Module, weights: str | os.PathLike | dict, *, ignore: tuple[str, ...] = ("fc.",)) -> None:
    """Loads a state dict (a file or a dict) into `module`; keys starting with `ignore` (a head that is replaced)
    may be missing or extra. Anything else missing, unexpected or of another shape is a ValueError naming it."""
    state = weights if isinstance(weights, dict) else read_state_dict(weights)
    name = "the given state dict" if isinstance(weights, dict) else str(weights)
    state = {k: v for k, v in state.items() if not k.startswith(ignore)}
    expected = {k: v for k, v in module.state_dict().items() if not k.startswith(ignore)}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{name} does not fit a {type(module).__name__}: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]}), {len(wrong)} wrong shapes (e.g. {wrong[:2]})"
        )
    module.load_state_dict(state, strict=False)
