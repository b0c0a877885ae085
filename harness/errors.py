"""One exception tree. Every error names the thing that is wrong and how to fix it.

The CLI maps these to exit codes (see ``exit_code``) and prints ``str(err)``, never a
traceback. Code below the CLI raises only these (plus programming errors, which are bugs).
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class. ``hint`` tells the user what to do about it."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class RecordingError(HarnessError):
    """A recording file is missing, corrupt, foreign, or of an unsupported schema version."""


class ImportFormatError(HarnessError):
    """An input file for ``harness import`` is unreadable; names file and line."""

    def __init__(self, path: str, line: int | None, message: str, hint: str | None = None):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}", hint)
        self.path = path
        self.line = line


class DecodeError(HarnessError):
    """A frame could not be decoded into a venue message (bad JSON, missing field, ...)."""

    def __init__(self, venue: str, message: str, frame_excerpt: str | None = None):
        text = f"{venue}: {message}"
        if frame_excerpt is not None:
            text += f" (frame starts {frame_excerpt[:120]!r})"
        super().__init__(text)
        self.venue = venue


class AuthError(HarnessError):
    """Credentials missing, unreadable or rejected."""


class ConfigError(HarnessError):
    """A bad option, URL override or config file value."""


class SpecError(HarnessError):
    """An AsyncAPI document or errata file could not be read or understood."""
