"""Where an export's files live: `EXPORT_ROOT/<dataset id>/<export id>/<path>`.

A build writes into a hidden sibling folder (`.<export id>.partial`) and renames it into place when every
file is written, so the folder of an export either holds all its files or does not exist."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from django.conf import settings


def _root() -> Path:
    return Path(settings.EXPORT_ROOT)


def export_dir(export) -> Path:
    """The folder of a finished export's files."""
    return _root() / str(export.dataset_id) / str(export.pk)


def partial_dir(export) -> Path:
    """The folder a build writes into before it renames it to `export_dir`."""
    return _root() / str(export.dataset_id) / f".{export.pk}.partial"


def lock_path(export_id: int) -> Path:
    """A lock file per export (without PostgreSQL, a build holds an flock on it while it runs)."""
    return _root() / ".locks" / f"{int(export_id)}.lock"


def safe_relative(path: str) -> PurePosixPath:
    """`path` as a relative POSIX path inside an export; ValueError for an empty, absolute or `..` path."""
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path or path.startswith("/"):
        raise ValueError(f"not a path inside an export: {path!r}")
    p = PurePosixPath(path)
    if not p.parts or p.is_absolute() or ".." in p.parts:
        raise ValueError(f"not a path inside an export: {path!r}")
    return p


def export_file_path(export, path: str) -> Path:
    """The file `path` (e.g. "data/train.messages.jsonl") of an export on disk. Refuses absolute paths
    and `..` with ValueError, so a path from a URL can never leave the export's folder."""
    return export_dir(export).joinpath(*safe_relative(path).parts)


def remove_export_files(export) -> None:
    """Remove the export's folder and any half-written one (after a failed or interrupted build)."""
    for folder in (partial_dir(export), export_dir(export)):
        shutil.rmtree(folder, ignore_errors=True)
