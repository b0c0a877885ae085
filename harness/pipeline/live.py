"""The pipeline live, on what the recorder writes (``harness record --pipeline``).

``LivePipeline`` is a recorder observer (``harness.live.observe``): frames and REST
exchanges go to a bounded queue (the receive path only appends) that a task drains into
the same ``Pipeline`` a replay uses. Harness time is each frame's receive time, exactly as
in a replay of the recording being made, so a live run and a later ``harness replay`` of
its recording compute the same index and signals (a test holds them equal). Each new
signal is handed to ``on_signal`` as it is found. The pipeline's log, for
``harness record --pipeline`` an ``output.RecordingLog``, writes the index values, signals
and settlements into the recording through the recorder's own writer (queued with the
frames, never a second connection): the writer must stay open until ``finish()``.
"""

from __future__ import annotations

from collections import deque

from harness.frame import Frame
from harness.live.observe import QueueDrainer


class LivePipeline(QueueDrainer):
    MAX_QUEUE = 100_000

    def __init__(self, pipeline, on_signal=None, *, max_queue: int = MAX_QUEUE):
        self.pipe = pipeline
        self.on_signal = on_signal or (lambda s: None)
        self.queue: deque = deque()
        self.max_queue = max_queue
        self.frames_queued = 0
        self.dropped = 0  # frames never computed on (the queue was full): the output says so
        self._signals_seen = 0

    # -- observer protocol (event loop thread, inside the receive path) --
    def on_frame(self, frame: Frame) -> None:
        if self.frames_queued >= self.max_queue:
            self.dropped += 1
            return
        self.frames_queued += 1
        self.queue.append(("frame", frame))
        self._kick()

    def on_http(self, exchange: dict) -> None:
        self.queue.append(("http", exchange))
        self._kick()

    def drain(self, limit: int | None = None) -> None:
        pipe = self.pipe
        n = 0
        while self.queue and (limit is None or n < limit):
            kind, item = self.queue.popleft()
            n += 1
            if kind == "frame":
                self.frames_queued -= 1
                pipe.on_frame(item)
            else:
                pipe.attach_http([item])
        sigs = pipe.signals
        while self._signals_seen < len(sigs):
            self.on_signal(sigs[self._signals_seen])
            self._signals_seen += 1

    def finish(self) -> dict:
        """Drain what is left, close the session log, return the pipeline summary."""
        self.drain()
        self.pipe.finish()
        out = self.pipe.summary()
        out["live_frames_not_computed"] = self.dropped
        return out
