"""The live session log (record --pipeline) rides the recorder's writer: does it slow frames?

The same frames are written twice in one run: alone (the baseline) and with the session
log's rows queued among them as a live pipeline would (an index row every 200 frames: 5 Hz
at 1,000 frames/s, a busy multi-venue recording; a signal every 20,000). Both time the
whole write (receive-path calls and the writer thread's close), best of 5, alternated.
"""

from __future__ import annotations

import os
import tempfile

from bench.common import Row, best_of
from harness.store import RecordingWriter

N = 300_000
INDEX_EVERY = 200
SIGNAL_EVERY = 20_000
PAYLOAD = '{"channel":"l2_data","client_id":"","timestamp":"2026-11-25T00:00:00Z","sequence_num":%d,"events":[{"type":"update","product_id":"BTC-USD","updates":[{"side":"bid","event_time":"2026-11-25T00:00:00Z","price_level":"86000.01","new_quantity":"0.5"}]}]}'
INDEX_ROW = (0, 86_000.12, 1, 0, None, "coinbase,gemini,kraken", None, 86_000.05, 3.2, 1.1, 1.2e-4)
SIGNAL_ROW = (0, "KXBTC15M-26NOV250045-45", "buy_yes", 0, 0.07, 0.06, 0.41, 10.0, 0.02, 0.5, 86_000.12, 0, 1.2e-4,
              0.39, 0.41, 0, 5_000_000_000, 85_950.0, 50.12)


def _write(path: str, payloads: list[str], with_log: bool) -> int:
    w = RecordingWriter(path, mode="simulate")
    c = w.connection("coinbase", "ws://127.0.0.1/", 0)
    frame, index_value, signal = w.frame, w.index_value, w.signal
    for i in range(N):
        frame(c, "in", 1_000 + i, i, "text", payloads[i])
        if with_log and i % INDEX_EVERY == 0:
            index_value((1_000 + i, *INDEX_ROW[1:]))
            if i % SIGNAL_EVERY == 0:
                signal((1_000 + i, *SIGNAL_ROW[1:]))
    w.close()
    return w.session_log_rows


def run() -> list[Row]:
    payloads = [PAYLOAD % i for i in range(N)]
    with tempfile.TemporaryDirectory() as d:
        def fresh(name: str) -> str:
            p = os.path.join(d, name)
            for suf in ("", "-wal", "-shm"):
                if os.path.exists(p + suf):
                    os.unlink(p + suf)
            return p

        # alternated, best of 5 each, so the shared machine's noise falls on both alike
        alone = logged = float("inf")
        for _ in range(5):
            alone = min(alone, best_of(lambda: _write(fresh("a.db"), payloads, False), 1))
            logged = min(logged, best_of(lambda: _write(fresh("b.db"), payloads, True), 1))
        rows_written = _write(fresh("c.db"), payloads, True)
    row = Row("store", "writer with the live session log: frames/s", N / logged, "frames/s", N / alone,
              ">= 0.95x frames alone", note=f"{rows_written:,} session-log rows among {N:,} frames")
    row.ok = row.ratio >= 0.95
    return [row]


if __name__ == "__main__":
    for r in run():
        print(r)
