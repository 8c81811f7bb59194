"""Writing run folders and bundles atomically: a failure leaves no half-written folder behind."""

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
