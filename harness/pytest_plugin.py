"""pytest plugin (entry point ``pytest11: harness``): recordings as tests.

``pytest --harness-recording PATH [--harness-recording PATH2 ...]`` adds one test item
per check per recording (``test_format[sample.db]``, ``test_sequence[sample.db]`` ...);
a failing item prints its findings with frame ids (``harness show PATH FRAME_ID``).
``--harness-only NAME`` limits the checks, ``--harness-config FILE`` sets budgets,
``--harness-spec VENUE=PATH`` validates against a published spec.

For your own tests: the marker ``@pytest.mark.harness_recording("recordings/x.db",
speed="max")`` and the fixture ``harness_replay`` (frames in receive order, decoded
messages, and ``check()`` to run the checks). Paths are relative to the rootdir (else
to the test file). Sync fixture: it works in ``async def`` tests under pytest-asyncio.

``--harness-record-mode none|once|all`` (default ``none``): ``none`` uses the recording
and fails when it is missing; ``once`` records when missing, ``all`` records every time.
Recording needs a callable ``harness_record(path)`` defined in a conftest.py (or any
plugin); without one, ``once``/``all`` fail with "live recording not available in this
run".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

_CHECKS = ("endpoint", "auth", "format", "sequence", "latency", "quality")


def pytest_addoption(parser):
    g = parser.getgroup("harness", "record/replay/check harness")
    g.addoption("--harness-recording", action="append", default=[], metavar="PATH",
                help="run the harness checks on this recording as test items (repeatable)")
    g.addoption("--harness-record-mode", default="none", choices=("none", "once", "all"),
                help="none: recordings must exist (default); once: record missing ones; all: re-record (needs a harness_record callable)")
    g.addoption("--harness-only", action="append", default=[], metavar="CHECK", help="only these checks (repeatable)")
    g.addoption("--harness-config", default=None, metavar="FILE", help="TOML budgets/severities for the checks")
    g.addoption("--harness-spec", action="append", default=[], metavar="VENUE=PATH", help="validate against an AsyncAPI document")


def pytest_configure(config):
    config.addinivalue_line("markers", 'harness_recording(path, speed="max"): the recording the harness_replay fixture replays')
    config._harness_reports = {}


class HarnessRecordError(Exception):
    pass


def _recorder(config):
    for plugin in config.pluginmanager.get_plugins():
        fn = getattr(plugin, "harness_record", None)
        if callable(fn):
            return fn
    return None


def ensure_recording(config, path: Path) -> Path:
    """Apply ``--harness-record-mode`` to ``path``; returns it or raises HarnessRecordError."""
    mode = config.getoption("--harness-record-mode", "none")
    exists = path.exists()
    if mode == "none" or (mode == "once" and exists):
        if not exists:
            raise HarnessRecordError(f"recording {path} does not exist (--harness-record-mode none)")
        return path
    rec = _recorder(config)
    if rec is None:
        raise HarnessRecordError(
            f"--harness-record-mode {mode}: live recording not available in this run "
            f"(define a harness_record(path) callable in conftest.py, or use --harness-record-mode none)"
        )
    rec(path)
    if not path.exists():
        raise HarnessRecordError(f"harness_record({path}) did not create the recording")
    return path


def _resolve(config, p: str, base: Path | None = None) -> Path:
    pp = Path(p)
    if pp.is_absolute():
        return pp
    cand = Path(config.rootpath) / pp
    if not cand.exists() and base is not None and (base / pp).exists():
        return base / pp
    return cand


def _report(config, path: Path):
    cache = config._harness_reports
    if path not in cache:
        from harness.checks import config as cfgmod
        from harness.checks.runner import run_checks

        specs = {}
        for it in config.getoption("--harness-spec") or []:
            v, _, p = it.partition("=")
            specs[v.lower()] = p
        cfg = cfgmod.load(config.getoption("--harness-config"), search_from=config.rootpath)
        cache[path] = run_checks(path, None, cfg, specs=specs)
    return cache[path]


class HarnessCheckItem(pytest.Item):
    def __init__(self, *, check: str, recording: Path, label: str, **kw):
        super().__init__(**kw)
        self.check = check
        self.recording = recording
        self.label = label

    def runtest(self):
        try:
            path = ensure_recording(self.config, self.recording)
        except HarnessRecordError as e:
            raise HarnessCheckFailure(str(e)) from None
        res = _report(self.config, path).result(self.check)
        if res.status == "fail":
            lines = [f"{self.check} FAILED on {path}:"]
            for f in res.findings:
                if f.severity == "info":
                    continue
                lines.append("  " + f.line())
                if f.frame_ids:
                    lines.append(f"      frames {f.frame_ids}  (harness show {path} {f.frame_id})")
                if f.example:
                    lines.append(f"      {f.example[:200]}")
            raise HarnessCheckFailure("\n".join(lines))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, HarnessCheckFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.recording, None, f"harness {self.check} [{self.label}]"


class HarnessCheckFailure(Exception):
    pass


def pytest_collection_modifyitems(session, config, items):
    recs = config.getoption("--harness-recording") or []
    if not recs:
        return
    only = [n for o in config.getoption("--harness-only") or [] for n in o.split(",") if n]
    bad = [n for n in only if n not in _CHECKS]
    if bad:
        raise pytest.UsageError(f"--harness-only: unknown check(s) {bad}; use {', '.join(_CHECKS)}")
    names = [os.path.basename(r) for r in recs]
    for r in recs:
        path = _resolve(config, r)
        label = os.path.basename(r) if names.count(os.path.basename(r)) == 1 else r
        for check in only or _CHECKS:
            items.append(HarnessCheckItem.from_parent(session, name=f"test_{check}[{label}]", check=check, recording=path, label=label))


@dataclass
class HarnessReplay:
    """What ``harness_replay`` yields: ``frames`` (receive order), ``messages`` ((frame,
    message) for every decoded inbound message), ``decode_errors`` ((frame, text))."""

    path: Path
    speed: float | None
    frames: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    decode_errors: list = field(default_factory=list)

    def inbound(self, venue: str | None = None) -> list:
        return [f for f in self.frames if f.dir == "in" and (venue is None or f.venue == venue)]

    def check(self, only=None):
        from harness.checks.runner import run_checks

        return run_checks(self.path, only)


class _Collect:
    def __init__(self, out: HarnessReplay):
        from harness.checks.runner import Decoder

        self.out = out
        self.dec = Decoder()

    def on_frame(self, f):
        self.out.frames.append(f)
        v = self.dec.view(f)
        for m in v.messages:
            self.out.messages.append((f, m))
        if v.error:
            self.out.decode_errors.append((f, v.error))


@pytest.fixture
def harness_replay(request):
    m = request.node.get_closest_marker("harness_recording")
    if m is None:
        pytest.fail('harness_replay needs @pytest.mark.harness_recording("path/to/rec.db")')
    if not m.args:
        pytest.fail("harness_recording marker: give the recording path")
    speed = m.kwargs.get("speed", "max")
    speed = None if speed in ("max", None) else float(speed)
    base = Path(str(request.node.fspath)).parent
    path = _resolve(request.config, m.args[0], base)
    try:
        path = ensure_recording(request.config, path)
    except HarnessRecordError as e:
        pytest.fail(str(e), pytrace=False)
    from harness.replay.source import replay
    from harness.store.reader import Recording

    out = HarnessReplay(path, speed)
    with Recording(path) as rec:
        replay(rec, _Collect(out), speed=speed)
    yield out
