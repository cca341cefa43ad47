"""Exceptions for problems a user can fix: each message names the file, column, task or option at fault.

The command line prints the message of any :class:`MultitaskError` on one line and exits with status 2.
"""

from __future__ import annotations


class MultitaskError(Exception):
    """Base class: a problem with the user's input, not a bug in the library."""


class DataError(MultitaskError, ValueError):
    """A data file, column, target or feature that cannot be used as given."""


class ConfigError(MultitaskError, ValueError):
    """An option, task declaration or config file that is invalid or inconsistent."""


class CheckpointError(MultitaskError):
    """A run directory or checkpoint that is missing, corrupted, or was not written by this library."""


class MissingExtraError(MultitaskError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


class TrainingDivergedError(MultitaskError):
    """Training produced a non-finite loss or non-finite weights: the run stops and saves no model.

    The message names the task, the epoch and step, and the checkpoint of the last completed epoch (kept).
    """
