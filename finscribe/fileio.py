"""All-or-nothing writes: a reader never sees a half-written JSON file or model folder."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from finscribe.errors import OutputLocationError


def write_json_atomic(path: Path, obj: Any, *, indent: int | None = 2) -> None:
    """Write JSON via a temp file + rename so that no half-written file is ever left."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=indent) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_text_atomic(path: Path, text: str) -> None:
    """Write text via a temp file + rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


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
