"""The OTA part's exceptions: the CLI maps `Refused` to exit 1 and `BadInput` to exit 2.

Every message names the file or field at fault and, where there is one, the fix.
"""

from __future__ import annotations


class OtaError(Exception):
    """Base of the errors this part raises."""

    exit_code = 1


class Refused(OtaError):
    """A bundle or an operation refused by a check (verification, signature, policy)."""


class BadInput(OtaError):
    """The operator named something that does not exist or cannot be parsed."""

    exit_code = 2


class Busy(Refused):
    """Another bundle operation holds the store lock."""
