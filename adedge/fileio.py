"""Writing run folders, bundles and JSON files atomically: a failure leaves nothing half-written."""

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adedge.errors import AdedgeError


@contextmanager
def atomic_directory(target: Path | str, marker: str) -> Iterator[Path]:
    """Yield a scratch folder that replaces TARGET only once the block succeeds.

    An existing TARGET is replaced only if it is empty or holds MARKER (a file adedge writes), so a
    mistyped --out never deletes someone's folder; until the swap, the old TARGET stays intact.
    """
    target = Path(target)
    if target.exists() and not (target.is_dir() and (not any(target.iterdir()) or (target / marker).is_file())):
        raise AdedgeError(f"{target} exists and is not an adedge output folder; choose another --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(scratch, 0o777 & ~umask)  # mkdtemp makes it private; the result should be an ordinary folder
    try:
        yield scratch
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    previous = target.with_name(f".{target.name}.previous-{os.getpid()}")
    if target.exists():
        os.rename(target, previous)
    os.rename(scratch, target)
    shutil.rmtree(previous, ignore_errors=True)


def _finite_or_none(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def json_text(values: object, indent: int | None = None) -> str:
    """Strict JSON: a value that is not a finite number (an undefined metric, a broken score)
    becomes null, never the bare NaN that Python writes and other JSON readers refuse."""
    return json.dumps(_finite_or_none(values), indent=indent, allow_nan=False)


def write_text_atomic(path: Path, text: str) -> None:
    """Write TEXT to PATH through a scratch file renamed over it: a reader never sees half a file,
    and a failed write leaves the old file (and no scratch file) behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    try:
        scratch.write_text(text, encoding="utf-8")
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def write_json(path: Path, values: object) -> None:
    """Write VALUES as strict JSON to PATH atomically."""
    write_text_atomic(path, json_text(values, indent=2) + "\n")
