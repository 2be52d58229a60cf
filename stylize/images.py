"""Images in and out: Pillow decoding (EXIF, odd modes), the seed's resizing, tensor conversion, saving."""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import StylizeError
from .outputs import check_name_lengths, is_dir

# Extensions we write, with the Pillow format used for each.
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


MAX_PIXELS_VARIABLE = "STYLIZE_MAX_PIXELS"


def max_pixels() -> int:
    """The largest image we decode: Pillow's default (about 89.5 MP), or ``STYLIZE_MAX_PIXELS``."""
    value = os.environ.get(MAX_PIXELS_VARIABLE, "").strip()
    if not value:
        return Image.MAX_IMAGE_PIXELS or 89_478_485
    try:
        limit = int(float(value))
    except (ValueError, OverflowError):
        limit = 0
    if limit < 1:
        raise StylizeError(f"{MAX_PIXELS_VARIABLE}={value!r}: expected a whole number of pixels, e.g. 200000000.")
    return limit


def _pixels(n: int) -> str:
    return f"{n / 1e6:.1f} megapixels" if n >= 1e6 else f"{n:,} pixels"


def load_image(path: str | Path) -> Image.Image:
    """Open an image as 8-bit RGB, upright (EXIF orientation applied).

    Modes: RGBA/LA/P with transparency are composited on white; L/1/P/CMYK/YCbCr/LAB/HSV are converted;
    16-bit and 32-bit grayscale (I;16, I) are scaled from their full range, float (F) from [0, 1];
    animated images use their first frame.
    """
    path = Path(path)
    if not path.exists():
        raise StylizeError(f"image not found: {path}. Check the path.")
    if not path.is_file():
        raise StylizeError(f"not a file: {path}. Give an image file (PNG, JPEG, ...).")
    limit = max_pixels()
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = limit
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data": we read what we can, quietly
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                rgb = _to_rgb(img)
    except UnidentifiedImageError:
        raise StylizeError(f"cannot read image {path}: not an image Pillow can read. Give a PNG or JPEG file.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        pixels = _pixels(int(found.group(1))) if found else "more pixels"
        raise StylizeError(f"cannot read image {path}: {pixels}, over the limit of {_pixels(limit)} "
                           f"(Pillow's guard against decompression bombs). To read it on purpose, raise the limit: "
                           f"{MAX_PIXELS_VARIABLE}={int(found.group(1)) if found else 2 * limit}; "
                           "or scale the image down first.") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise StylizeError(f"cannot read image {path}: {e}. The file may be truncated or corrupt.") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    if min(rgb.size) < 1:
        raise StylizeError(f"image {path} is empty ({rgb.size[0]}x{rgb.size[1]} px).")
    return rgb


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        if img.mode == "F":
            scale = 1.0 if a.max(initial=0.0) <= 1.0 else 255.0
        elif img.mode == "I" and a.max(initial=0) <= 255:
            scale = 255.0  # 8-bit data stored as 32-bit
        else:
            scale = 65535.0
        a = np.clip(a / scale, 0.0, 1.0)
        return Image.fromarray(np.round(a * 255).astype(np.uint8), "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def shorter_edge_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) after scaling the shorter edge to ``size``, computed as torchvision's ``Resize(size)`` does."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """Scale so the shorter edge is ``size`` px: the seed's ``transforms.Resize(imsize)`` (bilinear, antialiased)."""
    return _resize(img, *shorter_edge_size(img.width, img.height, size))


def resize_cover(img: Image.Image, width: int, height: int) -> Image.Image:
    """Centre-crop to the aspect ratio of ``width`` x ``height``, then scale to exactly that size.

    The seed asserts the style image has the content image's size; we make it so without distorting it.
    Cropping first keeps memory bounded by the output size, whatever the input's shape.
    """
    if img.size == (width, height):
        return img
    if img.width * height > width * img.height:  # wider than the target: crop the sides
        w, h = max(1, round(img.height * width / height)), img.height
    else:
        w, h = img.width, max(1, round(img.width * height / width))
    left, top = (img.width - w) // 2, (img.height - h) // 2
    return _resize(img.crop((left, top, left + w, top + h)), width, height)


def _resize(img: Image.Image, width: int, height: int) -> Image.Image:
    """Bilinear, antialiased: what torchvision's ``resize`` does with a PIL image (it calls PIL). Done here
    directly because importing torchvision costs a CLI call ~1.4 s (it loads torch._dynamo)."""
    return img.resize((width, height), Image.Resampling.BILINEAR)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """(1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).unsqueeze(0).contiguous().float().div_(255)


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """A (1, 3, H, W) or (3, H, W) tensor in [0, 1] as an 8-bit RGB image."""
    # x 255 and truncated, as torchvision's to_pil_image (the seed's ToPILImage) does
    pixels = tensor.detach().squeeze(0).clamp(0, 1).mul(255).byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(pixels, "RGB")


def check_output_path(path: str | Path, suffixes=tuple(SAVE_FORMATS)) -> Path:
    """Fail early (before any compute) on an output we could not write."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise StylizeError(f"output {path}: unsupported extension '{path.suffix}'. Use one of {', '.join(suffixes)}.")
    if is_dir(path):
        raise StylizeError(f"cannot write {path}: a folder of that name exists. Remove it or choose another path.")
    check_name_lengths([path])
    check_writable(path, path.parent)
    return path


def check_writable(path: Path, folder: Path) -> None:
    """Fail early if ``folder`` (created later, so probe the nearest one that exists) cannot take ``path``."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        raise StylizeError(f"cannot write {path}: {folder} is not a writable folder. Choose another output with -o.") from None


def save_image(tensor: torch.Tensor, tmp_path: str | Path, final_name: str | Path) -> None:
    """Write ``tensor`` to ``tmp_path`` in the format ``final_name``'s extension names (PNG or JPEG q=95)."""
    fmt = SAVE_FORMATS[Path(final_name).suffix.lower()]
    to_pil(tensor).save(tmp_path, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
