"""The committed sample and the simulator: how long `harness replay recordings/sample.db`
takes at max speed (the whole command, in a subprocess: startup, pipeline, report), against
a bare replay of the same recording into a no-op sink in this process; and how long
`harness simulate` takes for a short session, against the simulated duration (real time)
and its source generation alone."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Row, best_of

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "recordings" / "sample.db"
SIM_MINUTES = 2.0

NOTES = [
    "- sim: `harness replay recordings/sample.db` is the whole command in a subprocess (interpreter start, "
    "imports, pipeline at --speed max, terminal report); the baseline replays the same frames into a no-op "
    "sink in-process. `harness simulate` serves the session at 20x through the impersonation server to the real "
    "recorder, so its wall time is about the simulated time / 20 plus generation and remapping.",
]


def _raw_replay() -> int:
    from harness.replay.source import replay
    from harness.store.reader import Recording

    class Sink:
        n = 0

        def on_frame(self, f):
            self.n += 1

    s = Sink()
    with Recording(str(SAMPLE)) as rec:
        replay(rec, s, speed=None)
    return s.n


def _cli_replay() -> None:
    p = subprocess.run([sys.executable, "-m", "harness", "replay", str(SAMPLE)], cwd=REPO, capture_output=True,
                       text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])


def run() -> list[Row]:
    rows: list[Row] = []
    if SAMPLE.exists():
        raw = best_of(_raw_replay)
        cli = best_of(_cli_replay)
        mb = SAMPLE.stat().st_size / 1e6
        rows.append(Row("sim", "harness replay recordings/sample.db (max speed, whole command)", cli, "s", raw,
                        "< 30 s", cli < 30, f"{mb:.1f} MB sample, 20 simulated minutes; baseline = bare replay, no-op sink"))
    from harness.sim.session import simulate
    from harness.sim.source import write_source

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        res = simulate(os.path.join(tmp, "s.db"), minutes=SIM_MINUTES, seed=1)
        wall = time.perf_counter() - t
        gen = best_of(lambda: write_source(os.path.join(tmp, f"src{time.perf_counter_ns()}.db"),
                                           start_ns=res.start_ns, minutes=SIM_MINUTES, seed=1))
    sim_s = SIM_MINUTES * 60
    rows.append(Row("sim", f"harness simulate --minutes {SIM_MINUTES:g} (served at 20x, recorded, remapped)", wall, "s", sim_s,
                    "", None, f"{res.frames:,} frames captured; capture {res.capture_s:.1f} s, remap {res.remap_s:.2f} s; "
                    "baseline = the simulated duration"))
    rows.append(Row("sim", "source generation alone (simulated seconds per wall second)", sim_s / gen, "x real time", None,
                    "", None, f"{res.source_frames:,} frames + {res.source_http:,} REST rows in {gen:.2f} s"))
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
