"""The one exception family users of stzoo see.

Every error raised because of something the *user* did (a bad input, an unknown model name, a
missing weights file) is a subclass of :class:`StzooError` and of the matching built-in
exception, so ``except ValueError`` keeps working for code that does not know about stzoo.
"""

from __future__ import annotations


class StzooError(Exception):
    """Base class of every error stzoo raises on purpose."""


class InputError(StzooError, ValueError):
    """An input had the wrong shape, size, values or range."""


class InputTypeError(StzooError, TypeError):
    """An input was of a type stzoo cannot read."""


class UnknownModelError(StzooError, KeyError):
    """A zoo name or architecture id is not known."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(StzooError, ValueError):
    """A model configuration is invalid."""


class WeightsNotAvailableError(StzooError, FileNotFoundError):
    """A zoo entry has no released weights, or they cannot be found."""


class CheckpointError(StzooError, ValueError):
    """A training checkpoint is damaged or was not written by stzoo."""


class UndertrainedWarning(UserWarning):
    """The weights being loaded do not beat the trivial baselines of their own test set (copy-last-frame,
    the mean frame): they were released below the release gate and are listed as ``undertrained``."""


class StorageError(StzooError, OSError):
    """A file could not be written: the disk is full, the target is not a regular file, or another
    process holds the lock of the same output. Whatever was there before is left as it was."""
