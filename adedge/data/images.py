"""Image and mask IO: the single decode path shared by training and the runtime.

An image is decoded here and nowhere else; resizing it to the model's size is part of the exported
graph (adedge.train.detector.Preprocess), so a part looks exactly the same to the model when it is
trained on and when any client inspects it. Maps and masks are resized here, to the frame's size.
"""

import io
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from adedge.errors import AdedgeError
from adedge.fileio import write_bytes_atomic

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: Path) -> bool:
    """True for a visible file whose suffix names an image format we decode."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


# The largest frame decoded: 120 megapixels (360 MB as RGB) holds the biggest area-scan cameras; a
# larger image, or a decompression bomb claiming to be one, is refused from its header, before decoding.
MAX_FRAME_PIXELS = 120_000_000
Image.MAX_IMAGE_PIXELS = None  # Pillow's own check would only warn up to twice its limit; ours refuses


def _open(file: Path | BinaryIO, name: Path | str, decode: bool = True) -> Image.Image:
    """The image in FILE, decoded unless DECODE is False (then only its header is read)."""
    try:
        image = Image.open(file)
        if image.width * image.height > MAX_FRAME_PIXELS:
            raise AdedgeError(
                f"image too large: {name} is {image.width}x{image.height} pixels; adedge decodes frames of up to "
                f"{MAX_FRAME_PIXELS // 1_000_000} megapixels (the model resizes every frame to a few hundred pixels anyway)"
            )
        if decode:
            image.load()
    except UnidentifiedImageError:
        raise AdedgeError(f"not an image file: {name}") from None
    except PermissionError:
        raise AdedgeError(f"cannot read {name}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise AdedgeError(f"corrupt or truncated image: {name} ({exc})") from None
    return image


HIGH_DEPTH_GRAY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def decode_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL image (grayscale, palette, RGBA, 16-bit, CMYK) as uint8 RGB [H, W, 3]."""
    if image.mode not in HIGH_DEPTH_GRAY_MODES:
        return np.asarray(image.convert("RGB"))
    gray = np.asarray(image)
    if gray.dtype.kind in "iu":  # 16-bit (or 32-bit) integer samples: scale 0..65535 to 0..255
        gray = gray.astype(np.float64) / 257.0
    gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def load_image(path: Path | str) -> np.ndarray:
    """Decode an image file to uint8 RGB [H, W, 3]; raise AdedgeError naming the file if it can't."""
    path = Path(path)
    if not path.is_file():
        raise AdedgeError(f"image not found: {path}")
    return decode_rgb(_open(path, path))


def image_shape(path: Path | str) -> tuple[int, int]:
    """(height, width) of an image file, from its header: no pixel is decoded."""
    image = _open(Path(path), path, decode=False)
    image.close()
    return image.height, image.width


def decode_image(data: bytes, name: Path | str) -> np.ndarray:
    """Decode an image already read into memory (NAME only labels errors), so a caller that
    checked these bytes inspects exactly them; the same conversion as `load_image`."""
    return decode_rgb(_open(io.BytesIO(data), name))


def load_mask(path: Path | str, size: tuple[int, int]) -> np.ndarray:
    """Decode a ground-truth mask to bool [H, W]; its (H, W) must equal its image's."""
    path = Path(path)
    mask = load_image(path)[..., 0] > 0
    if mask.shape != tuple(size):
        raise AdedgeError(
            f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image is {size[1]}x{size[0]}"
        )
    return mask


def resize_map(anomaly_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float [H, W] anomaly map bilinearly to (H, W) of the original frame."""
    if anomaly_map.shape == tuple(size):
        return anomaly_map
    return cv2.resize(anomaly_map, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a bool mask to (H, W) with nearest-neighbour sampling (no new labels invented)."""
    if mask.shape == tuple(size):
        return mask
    return cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST) > 0


def save_image(path: Path, image: np.ndarray) -> None:
    """Write uint8 RGB (or gray) to a file whose suffix picks the format, atomically: a failed write
    (a full disk) raises OSError and leaves no half-written picture."""
    encoded = io.BytesIO()
    Image.fromarray(image).save(encoded, format=Image.registered_extensions()[path.suffix.lower()])
    write_bytes_atomic(path, encoded.getvalue())

