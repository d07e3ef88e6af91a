"""Embedders: the spaces in which artifacts are taken (the paper's section 3.2).

One interface: `embedder.embed(images, progress=False) -> Tensor`. Images are float (B, 3, H, W) in
[0, 1]. The work is batched (`batch_size`) on `device`, and the result comes back on the CPU.

  rgb   identity: (B, 3, H, W)
  freq  channelwise FFT, log1p magnitude, fftshifted (manifpt_ext.freq_embed): (B, 3, H, W)
  sl    torchvision ResNet50 trained on ImageNet, penultimate layer: (B, 2048)
  ssl   Barlow Twins ResNet50 backbone: (B, 2048)

`sl` and `ssl` read their weights from a local file and never download. That file is the
`weights` argument (`--weights`), or else the first known file name found in torch's hub cache
(`$TORCH_HOME/hub/checkpoints`). Both spaces resize images to 224 x 224 (bilinear; the paper's
images are 256, centre-cropped to 224) and normalise with the ImageNet mean and std, as the
authors' code does. A backbone written by `manifpt ssl-pretrain` is used at the image size it was
trained at instead (stored in its file): a network trained on 32 x 32 views has not seen 224.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

SPACES = ("rgb", "freq", "sl", "ssl")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std with the ImageNet statistics, for (B, 3, H, W) images in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std
# File names torch.hub gives these weights (torchvision's ResNet50 V1/V2; Barlow Twins' backbone).
KNOWN_WEIGHTS = {
    "sl": ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth", "resnet50-19c8e357.pth"),
    "ssl": ("resnet50.pth",),
}


class Embedder:
    name = "embedder"

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 64):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.batch_size = batch_size

    def key(self) -> str:
        """Identifies the map (name, settings, weights) for cache keys."""
        return self.name

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def embed(self, images: torch.Tensor, progress: bool = False) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"{self.name}: images must be a (B, 3, H, W) tensor, got {getattr(images, 'shape', type(images).__name__)}"
            )
        chunks = range(0, images.shape[0], self.batch_size)
        if progress:
            from tqdm import tqdm

            chunks = tqdm(chunks, desc=f"embed {self.name}", unit="batch")
        out = [self._forward(images[i : i + self.batch_size].to(self.device, torch.float32)).cpu() for i in chunks]
        if not out:
            return self._forward(images[:0].to(self.device, torch.float32)).cpu()
        return torch.cat(out)


class RGB(Embedder):
    name = "rgb"

    def _forward(self, x):
        return x


class Freq(Embedder):
    name = "freq"

    def __init__(self, mode: str = "logmag", **kw):
        super().__init__(**kw)
        from manifpt_ext import freq_embed

        freq_embed(torch.zeros(1, 1, 2, 2), mode)  # validates the mode now
        self.mode = mode

    def key(self):
        return f"freq-{self.mode}"

    def _forward(self, x):
        from manifpt_ext import freq_embed

        return freq_embed(x, self.mode)


def resolve_weights(space: str, weights: str | os.PathLike | None) -> Path:
    """The weights file for `space`: the given path, or a known file in torch's hub cache."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"{space}: weights file {path} does not exist")
        return path
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for name in KNOWN_WEIGHTS[space]:
        if (cache / name).is_file():
            return cache / name
    what = "torchvision's ImageNet ResNet50" if space == "sl" else "the Barlow Twins ResNet50 backbone"
    raise FileNotFoundError(
        f"{space}: no weights for {what}. manifpt never downloads: pass --weights FILE (weights=...), or put the file at "
        f"{cache / KNOWN_WEIGHTS[space][0]}. For a space with no outside weights, train one on your own reals with "
        "`manifpt ssl-pretrain`."
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ResNet50Features(Embedder):
    """A torchvision ResNet up to its pooled feature vector (fc removed), from a local state dict:
    ResNet50 (2048-d) for torchvision's and Barlow Twins' files, or the backbone that
    `manifpt ssl-pretrain` wrote (its file names the architecture)."""

    def __init__(self, space: str, weights: str | os.PathLike | None = None, **kw):
        super().__init__(**kw)
        import torchvision

        from .ssl_pretrain import FORMAT

        self.name = space
        self.weights = resolve_weights(space, weights)
        raw = _read_state_dict(self.weights)
        arch, self.input_size = "resnet50", (224, 224)
        if raw.get("format") == FORMAT:  # our own Barlow Twins backbone, used at the size it was trained at
            arch, self.input_size = raw["arch"], tuple(raw.get("input_size", self.input_size))
            raw = raw["state_dict"]
        model = getattr(torchvision.models, arch)(weights=None)
        model.fc = torch.nn.Identity()
        state = {k: v for k, v in raw.items() if not k.startswith("fc.")}  # the head is not used
        expected = model.state_dict()
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
                 if k in state and tuple(state[k].shape) != tuple(v.shape)]
        if missing or unexpected or wrong:
            raise ValueError(
                f"{space}: {self.weights} is not a {arch} state dict: {len(missing)} missing keys (e.g. {missing[:3]}), "
                f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]}), {len(wrong)} wrong shapes (e.g. {wrong[:2]}). "
                "Expected torchvision's resnet50 keys (conv1.weight, layer1.0.conv1.weight, ...); the fc.* head may be absent."
            )
        model.load_state_dict(state, strict=False)
        self.arch = arch
        self.model = model.eval().to(self.device)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        self._hash: str | None = None

    def key(self):
        if self._hash is None:
            self._hash = _sha256(self.weights)[:16]
        return f"{self.name}-{self.arch}-{self._hash}"

    def _forward(self, x):
        if tuple(x.shape[-2:]) != self.input_size:
            x = torch.nn.functional.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return self.model((x - self.mean) / self.std)


def _read_state_dict(path: Path) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)  # never unpickles arbitrary objects
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file: say which and why
        raise ValueError(f"cannot read weights file {path} as a torch state dict: {type(e).__name__}: {e}") from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) and "format" not in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"weights file {path} holds a {type(obj).__name__}, not a state dict")
    if "format" in obj:
        return obj
    return {k.removeprefix("module."): v for k, v in obj.items()}


def get_embedder(space: str, *, weights=None, device="cpu", batch_size: int = 64, freq_mode: str = "logmag") -> Embedder:
    """The embedder of a space by name: rgb, freq, sl or ssl."""
    if space == "rgb":
        return RGB(device=device, batch_size=batch_size)
    if space == "freq":
        return Freq(mode=freq_mode, device=device, batch_size=batch_size)
    if space in ("sl", "ssl"):
        return ResNet50Features(space, weights, device=device, batch_size=batch_size)
    raise ValueError(f"unknown space {space!r}: choose one of {', '.join(SPACES)}")
