"""Reading images with Pillow, turning every failure into an error that names the file."""

from __future__ import annotations

import os

from PIL import Image, UnidentifiedImageError

from reidcli.errors import DatasetError

# Pillow raises these for missing, truncated, unknown or hostile files.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def read_image(path: str | os.PathLike[str]) -> Image.Image:
    """The image at `path`, fully decoded, in RGB."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise DatasetError(f"image not found: {path}") from None
    except _DECODE_ERRORS as err:
        raise DatasetError(f"cannot decode image {path}: {err}") from None


def verify_image(path: str | os.PathLike[str]) -> str | None:
    """None if the file is a valid image that decodes completely, else why not.

    `Image.verify` checks the container (PNG checksums, headers) but not JPEG data, so the
    file is also decoded: a truncated JPEG only fails at decoding time.
    """
    try:
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            img.load()
    except FileNotFoundError:
        return "file not found"
    except UnidentifiedImageError:
        return "not an image Pillow can identify"
    except _DECODE_ERRORS as err:
        return f"cannot decode ({type(err).__name__}: {err})"
    return None
