"""Exceptions a user can cause. Each message says what went wrong and what to do about it.

The UI shows `str(err)` of any `DefectAugError` as an error box; anything else is a bug.
"""
from __future__ import annotations


class DefectAugError(Exception):
    """Base of every error caused by the user's input or settings (never by a bug)."""


class DataError(DefectAugError):
    """The dataset cannot be used: wrong layout, too few classes, no readable image..."""


class ArchiveError(DataError):
    """The uploaded archive is unsafe, corrupt or over the limits."""


class ParamError(DefectAugError):
    """A setting is out of range or unknown."""


class RunError(DefectAugError):
    """A run directory is missing, incomplete or does not hold what was asked."""


class Cancelled(DefectAugError):
    """The job was cancelled by the user."""


class DiskFull(DefectAugError):
    """The disk (or the user's quota) is full; what was being written was not kept."""


DISK_FULL = ("the disk is full: free some space (delete old runs or exports on the Jobs page), then try again. "
             "Nothing was changed.")


def is_disk_full(err: BaseException) -> bool:
    """Whether `err` is a write that failed for want of space (ENOSPC, EDQUOT, EFBIG)."""
    import errno
    return isinstance(err, OSError) and err.errno in {getattr(errno, n, None) for n in ("ENOSPC", "EDQUOT", "EFBIG")}
