"""The recording: a versioned SQLite file (schema in ``schema.py``, documented in
ARCHITECTURE.md), written by ``RecordingWriter`` and read by ``Recording``."""

from harness.store.reader import Recording
from harness.store.writer import RecordingWriter

__all__ = ["Recording", "RecordingWriter"]
