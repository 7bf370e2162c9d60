"""All-or-nothing writes: a reader never sees a half-written file, figure or model folder.

Every file FinScribe writes goes through `atomic_file` (a unique temp name beside the target,
then one rename), directly or through `write_json_atomic` / `write_text_atomic` /
`write_bytes_atomic`; folders go through `atomic_directory`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from finscribe.errors import OutputLocationError


@contextlib.contextmanager
def atomic_file(path: Path, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temp path beside `path` to write into; on success it replaces `path` in one rename,
    on any error it is removed. The temp name is unique per writer (pid + random), so concurrent
    writers of the same file never interleave; `fsync=True` flushes it to disk before the rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes, *, fsync: bool = False) -> Path:
    with atomic_file(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any, *, indent: int | None = 2) -> Path:
    return write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def ensure_output_dir(path: Path) -> Path:
    """Create `path` (and parents) and prove it is writable, before any long work starts; an
    unusable location is an OutputLocationError naming it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        raise OutputLocationError(f"cannot write to output folder {path}: {err.strerror or err}; "
                                  "choose another --output-dir or fix its permissions") from None
    return path


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a sibling temp folder to write into; on success it replaces `path` in one rename,
    on any error it is removed, so a crash never leaves a half-written model folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
