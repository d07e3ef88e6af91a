"""Image data: folders in the GM layout (ROOT/real/** + ROOT/<model>/**) and image loading."""
from .folder import IMAGE_EXTENSIONS, BadImagesError, ImageFolderGM, list_images, load_images, stratified_split

__all__ = ["IMAGE_EXTENSIONS", "BadImagesError", "ImageFolderGM", "list_images", "load_images", "stratified_split"]
