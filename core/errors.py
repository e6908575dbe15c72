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
