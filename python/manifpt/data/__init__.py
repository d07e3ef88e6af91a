"""Image data: folders in the GM layout (ROOT/real/** + ROOT/<model>/**), image loading, and the embedded
benchmark GM-Mini (`load("gm-mini")`)."""
from __future__ import annotations

from pathlib import Path

from .folder import IMAGE_EXTENSIONS, BadImagesError, ImageFolderGM, list_images, load_images, stratified_split


def load(name_or_root: str | Path = "gm-mini", size: int | None = 32) -> ImageFolderGM:
    """A dataset in the ImageFolderGM form: 'gm-mini' (the embedded benchmark) or the root of a GM folder."""
    from . import gm_mini

    return ImageFolderGM(gm_mini.resolve(name_or_root), size=size)


__all__ = ["IMAGE_EXTENSIONS", "BadImagesError", "ImageFolderGM", "list_images", "load", "load_images", "stratified_split"]
