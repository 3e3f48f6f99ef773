"""User-facing errors: the CLI prints their message on one line and exits with their code."""


class Pose3dError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 1


class InputError(Pose3dError):
    """Bad or unreadable input (path, video, keypoint file, JSON)."""

    exit_code = 2


class OutputError(Pose3dError):
    """The output cannot be written (unwritable directory, disk full)."""

    exit_code = 3


class DependencyError(Pose3dError):
    """An optional component (backend, weights, device) is not available."""

    exit_code = 4


class Interrupted(Pose3dError):
    """Ctrl-C: work stopped; what finished is kept."""

    exit_code = 130
