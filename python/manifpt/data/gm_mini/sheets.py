"""The shipped sample sheets: n images of 32x32 laid out in rows of SHEET_COLUMNS, as lossless PNG."""
from __future__ import annotations

import io

import numpy as np

SHEET_COLUMNS = 25


def sheet(images: np.ndarray, columns: int = SHEET_COLUMNS) -> np.ndarray:
    """(n, 32, 32, 3) uint8 -> one image of ceil(n / columns) rows (unused cells black)."""
    n, h, w, c = images.shape
    rows = -(-n // columns)
    grid = np.zeros((rows * columns, h, w, c), np.uint8)
    grid[:n] = images
    return grid.reshape(rows, columns, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, columns * w, c)


def unsheet(grid: np.ndarray, n: int, size: int = 32, columns: int = SHEET_COLUMNS) -> np.ndarray:
    rows = grid.shape[0] // size
    cells = grid.reshape(rows, size, columns, size, -1).transpose(0, 2, 1, 3, 4).reshape(rows * columns, size, size, -1)
    return np.ascontiguousarray(cells[:n])


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=True)
    return buf.getvalue()
