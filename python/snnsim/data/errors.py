"""The error raised by the dataset readers of :mod:`snnsim.data`."""

from __future__ import annotations

from ..errors import SnnsimError


class DataFormatError(SnnsimError):
    """A dataset file or directory is missing or does not follow its format.

    It derives from :class:`ValueError` (through :class:`snnsim.errors.SnnsimError`); the
    message names the offending path, field or value.
    """
