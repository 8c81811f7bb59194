"""Writing run folders, bundles and JSON files atomically: a failure leaves nothing half-written."""

import ctypes
import errno
import glob
import json
import math
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adedge.errors import AdedgeError


def check_output_folder(target: Path | str, marker: str) -> Path:
    """Refuse TARGET as an output folder unless it is absent, empty or holds MARKER (a file adedge
    writes), so a mistyped --out never deletes someone's folder; called before any long work."""
    target = Path(target)
    if target.exists() and not (target.is_dir() and (not any(target.iterdir()) or (target / marker).is_file())):
        raise AdedgeError(f"{target} exists and is not an adedge output folder; choose another --out")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise AdedgeError(f"cannot write {target}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise AdedgeError(f"cannot write {target}: no permission to write in {parent}")
            break
    return target


def check_outside(out: Path | str, folder: Path | str, what: str) -> None:
    """Refuse OUT (an output folder or file) if it is FOLDER or lies inside it: adedge must not
    write among a bundle's files (every later load would refuse it) or into the folder it watches
    (it would inspect its own overlays). WHAT names FOLDER in the message."""
    out, folder = Path(out), Path(folder)
    inside, within = out.resolve(), folder.resolve()
    if inside == within or within in inside.parents:
        raise AdedgeError(f"{out} is inside {what} {folder}: write the output somewhere else")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_leftovers(target: Path) -> None:
    """Delete what killed writes of TARGET left beside it: scratch folders of processes that are gone."""
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.partial"):
        pid = leftover.name[len(target.name) + 2 :].split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the platform or
    file system cannot."""
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), str(second))


@contextmanager
def atomic_directory(target: Path | str, marker: str) -> Iterator[Path]:
    """Yield a scratch folder that replaces TARGET only once the block succeeds.

    At every instant TARGET holds the complete old folder or the complete new one: the two are
    exchanged in one rename where the system can (Linux), else the old one is renamed aside for
    the instant of the swap. Scratch folders of killed writes are removed by the next write.
    """
    target = check_output_folder(target, marker)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".partial", dir=target.parent))
    os.chmod(scratch, 0o777 & ~_umask())  # mkdtemp makes it private; the result should be an ordinary folder
    try:
        yield scratch
        if not target.exists():
            os.rename(scratch, target)
        elif not _exchange(scratch, target):
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".partial", dir=target.parent))
            os.replace(target, old)
            os.rename(scratch, target)
            scratch = old
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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


def check_output_file(path: Path | str) -> Path:
    """Refuse PATH as an output file unless it is a new name or a regular file (not a device, a
    pipe, a folder, or a link to one), and its folder is a folder: called before any work starts."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a link" if path.is_symlink() else "a folder" if path.is_dir() else "not a regular file (a device or a pipe)"
        raise AdedgeError(f"refusing to write {path}: it is {kind}; name a new or regular file")
    if path.parent.exists() and not path.parent.is_dir():
        raise AdedgeError(f"cannot write {path}: {path.parent} is not a folder")
    return path


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write DATA to PATH through a scratch file renamed over it: a reader never sees half a file,
    and a failed write (a full disk) leaves the old file, or none, and no scratch file behind. Only
    a new name or a regular file is written over (see check_output_file). The scratch file is a new
    name of its own (O_EXCL), so nothing planted in the folder (a link, a pipe) is written through."""
    check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, scratch = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.chmod(scratch, 0o666 & ~_umask())  # mkstemp's file is private; the result is an ordinary file
        os.replace(scratch, path)
    finally:
        Path(scratch).unlink(missing_ok=True)


def open_appending(path: Path) -> int:
    """A descriptor (read and append) of the regular file PATH, created if absent. A link is not
    followed, a pipe is not waited on and a device is not written: each is refused in one line."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise
        descriptor = None
    if descriptor is None or not stat.S_ISREG(os.fstat(descriptor).st_mode):
        if descriptor is not None:
            os.close(descriptor)
        raise AdedgeError(f"refusing to write {path}: it is a link, a folder, a pipe or a device, not a regular file; "
                          "remove it or choose another --out")
    os.set_blocking(descriptor, True)
    return descriptor


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json(path: Path, values: object) -> None:
    """Write VALUES as strict JSON to PATH atomically."""
    write_text_atomic(path, json_text(values, indent=2) + "\n")
