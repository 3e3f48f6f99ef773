"""Atomic output: every file pose3d writes appears complete or not at all.

Writers produce a temporary file beside the destination (same folder, so the final rename
is atomic) and rename it into place only when they finished; on any error or Ctrl-C the
temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
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
        tmp = _new_file(folder, prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp")
    except OSError as exc:
        raise _not_writable(folder, exc) from None
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


_RANDOM_HEX = 12  # characters of randomness in a temporary file's name


def _new_file(folder: Path, prefix: str, suffix: str) -> Path:
    """A new empty file with a random name, made as open() makes files (mode 0666 less the
    umask, which the kernel applies), unlike mkstemp's 0600: outputs get the usual mode
    without reading the process-wide umask, which is not thread-safe."""
    for _ in range(100):
        candidate = folder / f"{prefix}{secrets.token_hex(_RANDOM_HEX // 2)}{suffix}"
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name in {folder}")


def remove_temporaries(path: str | Path) -> int:
    """Remove what :func:`atomic_output` left beside ``path`` when its process was killed
    (SIGKILL, lost node) before it could clean up; only for a ``path`` no one is writing.
    Returns how many files went."""
    path = Path(path)
    # atomic_output's names: ".NAME." + the random hex characters + a suffix
    stale = list(path.parent.glob(f".{glob_escape(path.name)}.{'?' * _RANDOM_HEX}*"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)
