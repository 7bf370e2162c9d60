"""The input files of build-dataset: walking a folder safely, checking an image, downscaling.

Nothing here drops an input silently: a symlink loop, a broken link, a folder named like a
crop or annotation, an unreadable or oversized image each become one line in the caller's list
of problems. Sizes come from `finscribe.limits`, the limits the service uses too.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from PIL import Image

from finscribe.fileio import atomic_file
from finscribe.limits import MAX_PIXELS, MIN_SIDE, downscale

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def check_image(path: Path, min_side: int = MIN_SIDE, max_pixels: int = MAX_PIXELS) -> str | None:
    """None if `path` is a readable image of a usable size, else the reason it is not."""
    try:
        with Image.open(path) as image:
            width, height = image.size  # read from the header: no decoding yet
            if width * height > max_pixels:
                return f"image too large ({width}x{height} > {max_pixels} pixels); downscale it"
            if min(width, height) < min_side:
                return f"image too small ({width}x{height}; each side must be >= {min_side} px)"
            image.load()
    except FileNotFoundError:
        return "image file not found"
    except IsADirectoryError:
        return "is a folder, not an image; rename or remove it"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        if getattr(err, "strerror", None):  # a symlink loop (ELOOP), no permission, ...
            return f"cannot be read ({err.strerror}); fix or remove it"
        return f"unreadable or corrupt image ({type(err).__name__}: {err})"
    return None


_FILE_SUFFIXES = (*IMAGE_SUFFIXES, ".json")


def list_files(folder: Path, problems: list[str]) -> tuple[list[Path], set[Path]]:
    """(files, unusable entries) under `folder` (hidden ones aside), following symlinked folders
    once; symlink loops, broken links, folders named like files and special files are unusable,
    each with its line in `problems`."""
    found: list[Path] = []
    unusable: set[Path] = set()
    visited: set[str] = set()

    def visit(directory: Path) -> None:
        real = os.path.realpath(directory)
        if real in visited:
            problems.append(f"{directory}: symlink loop (leads back to {real}); remove the link")
            return
        visited.add(real)
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith("."):
                continue
            try:
                mode = entry.stat().st_mode  # follows symlinks: a loop raises ELOOP
            except OSError as err:
                problems.append(f"{entry}: broken symlink or symlink loop ({err.strerror}); fix or remove it")
                unusable.add(entry)
                continue
            if stat.S_ISDIR(mode):
                if entry.suffix.lower() in _FILE_SUFFIXES:
                    problems.append(f"{entry}: a folder named like a crop or annotation; rename or remove it")
                    unusable.add(entry)
                else:
                    visit(entry)
            elif stat.S_ISREG(mode):
                found.append(entry)
            else:
                problems.append(f"{entry}: not a regular file; remove it")
                unusable.add(entry)

    visit(folder)
    return found, unusable


def store_downscaled(records: list[dict[str, Any]], folder: Path, max_pixels: int) -> int:
    """Point every record whose image exceeds `max_pixels` at a downscaled PNG copy in `folder`
    (named by the source path's hash, written atomically); returns how many were downscaled."""
    count = 0
    for record in records:
        with Image.open(record["image"]) as image:
            if image.width * image.height <= max_pixels:
                continue
            small = downscale(image.convert("RGB"), max_pixels)
        name = hashlib.sha256(record["image"].encode("utf-8")).hexdigest()[:16] + ".png"
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_file(folder / name) as tmp:
            small.save(tmp, format="PNG")
        record["image"] = str((folder / name).resolve())
        count += 1
    return count
