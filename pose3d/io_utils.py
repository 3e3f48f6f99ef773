"""Atomic output: every file pose3d writes appears complete or not at all.

Writers produce a temporary file beside the destination (same folder, so the final rename
is atomic) and rename it into place only when they finished; on any error or Ctrl-C the
temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from glob import escape as glob_escape
from pathlib import Path

from .errors import OutputError


def _output_folder(path: str | Path) -> Path:
    """The folder that will hold ``path``, created if needed; OutputError when it cannot be."""
    folder = Path(path).expanduser().resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder}: {exc.strerror}") from None
    return folder


def _not_writable(folder: Path, exc: OSError) -> OutputError:
    return OutputError(f"output folder {folder} is not writable: {exc.strerror or exc}")


def check_writable_dir(path: str | Path) -> Path:
    """Like the start of :func:`atomic_output`, for failing early: the folder that will hold
    ``path``, created if needed and tried by making a file in it (os.access says yes to root
    on read-only mounts and on /proc); OutputError when it cannot be."""
    folder = _output_folder(path)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise _not_writable(folder, exc) from None
    return folder


@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str | None = None):
    """Yields a temporary path to write; renamed to ``path`` when the block succeeds.

    ``suffix`` keeps the extension writers look at (numpy adds '.npz', imageio picks the
    format by it)."""
    path = Path(path)
    folder = _output_folder(path)
    try:  # making the temporary file is the writability test
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=folder)
    except OSError as exc:
        raise _not_writable(folder, exc) from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual mode
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def remove_temporaries(path: str | Path) -> int:
    """Remove what :func:`atomic_output` left beside ``path`` when its process was killed
    (SIGKILL, lost node) before it could clean up; only for a ``path`` no one is writing.
    Returns how many files went."""
    path = Path(path)
    # atomic_output's names: ".NAME." + mkstemp's 8 random characters + the suffix
    stale = list(path.parent.glob(f".{glob_escape(path.name)}.{'?' * 8}{glob_escape(path.suffix or '.tmp')}"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)
