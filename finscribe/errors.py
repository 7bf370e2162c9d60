"""The one error base of FinScribe.

Every user-facing error (bad input, missing file, unloadable model, impossible option) is a
`FinScribeError` whose message is one line naming the file or field and saying what to do.
`finscribe.cli` catches it once and prints `error: <message>` with exit status 2 (`--debug`
shows the traceback); library code never raises `SystemExit`.
"""

from __future__ import annotations


class FinScribeError(Exception):
    """A user error; the message names the file/field and the fix."""


class ConfigError(FinScribeError, ValueError):
    """A config file or option that cannot be used (unreadable file, unknown option, bad value)."""


class OutputLocationError(FinScribeError, OSError):
    """An output folder that cannot be written; checked before any long work starts."""
