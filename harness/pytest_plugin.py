"""pytest plugin (entry point ``pytest11: harness``): recordings as tests.

``pytest --harness-recording PATH [--harness-recording PATH2 ...]`` adds one test item
per check per recording (``test_format[sample.db]``, ``test_sequence[sample.db]`` ...);
a failing item prints its findings with frame ids (``harness show PATH FRAME_ID``).
``--harness-only NAME`` limits the checks, ``--harness-config FILE`` sets budgets,
``--harness-spec VENUE=PATH`` validates against a published spec.

For your own tests: the marker ``@pytest.mark.harness_recording("recordings/x.db",
speed="max")`` and two fixtures: ``harness_replay`` (frames in receive order, decoded
messages, and ``check()`` to run the checks) and ``harness_server`` (the recording served
by the impersonation server on 127.0.0.1 from a background thread: ``.url("kalshi")``, for
a client under test that connects by itself). Paths are relative to the rootdir (else to
the test file). Both are sync fixtures: they work in ``async def`` tests under
pytest-asyncio and in plain tests.

``--harness-record-mode none|once|all`` (default ``none``): ``none`` uses the recording
and fails when it is missing; ``once`` records when missing, ``all`` records every time.
Recording runs ``harness record`` in-process with the marker's ``record={...}`` keywords
(those of ``harness.config.build_config``: ``exchanges``, ``kalshi_series``, ``duration``,
``urls``, ``config_path`` ...) or with ``--harness-record-config FILE`` (a ``harness
record --config`` TOML); a callable ``harness_record(path)`` in a conftest.py takes
precedence. With none of these, ``once``/``all`` fail with "live recording not available
in this run". Kalshi credentials come from the environment, as for ``harness record``.

freezegun: harness modules are added to freezegun's ignore list, so the harness's own
clocks (replay schedule, server pacing, recorder timestamps) keep real time inside
``freeze_time``; your code sees the frozen time. Use ``freeze_time(..., real_asyncio=True)``
when an event loop runs inside the frozen block.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def _check_names() -> tuple[str, ...]:
    from harness.checks.runner import CHECK_NAMES

    return tuple(CHECK_NAMES)


def pytest_addoption(parser):
    g = parser.getgroup("harness", "record/replay/check harness")
    g.addoption("--harness-recording", action="append", default=[], metavar="PATH",
                help="run the harness checks on this recording as test items (repeatable)")
    g.addoption("--harness-record-mode", default="none", choices=("none", "once", "all"),
                help="none: recordings must exist (default); once: record missing ones; all: re-record (needs a harness_record callable)")
    g.addoption("--harness-record-config", default=None, metavar="FILE",
                help="record config TOML (as harness record --config) used by record modes once/all")
    g.addoption("--harness-only", action="append", default=[], metavar="CHECK", help="only these checks (repeatable)")
    g.addoption("--harness-config", default=None, metavar="FILE", help="TOML budgets/severities for the checks")
    g.addoption("--harness-spec", action="append", default=[], metavar="VENUE=PATH", help="validate against an AsyncAPI document")


def pytest_configure(config):
    config.addinivalue_line("markers", 'harness_recording(path, speed="max"): the recording the harness_replay fixture replays')
    config._harness_reports = {}
    try:  # keep the harness's clocks real under freeze_time (see the module docstring)
        import freezegun
    except ImportError:
        pass
    else:
        freezegun.configure(extend_ignore_list=["harness."])


class HarnessRecordError(Exception):
    pass


def _recorder(config):
    for plugin in config.pluginmanager.get_plugins():
        fn = getattr(plugin, "harness_record", None)
        if callable(fn):
            return fn
    return None


def _live_record(path: Path, record_kw: dict) -> None:
    """``harness record`` in-process into ``path`` (replacing it only when it succeeds), on a
    thread of its own so a running event loop of the test is not disturbed."""
    import asyncio
    import threading

    from harness.config import build_config
    from harness.errors import HarnessError
    from harness.live.manager import run_record

    kw = dict(record_kw)
    kw.setdefault("duration", "30s")
    tmp = path.with_name(path.name + ".recording")
    tmp.unlink(missing_ok=True)
    out: dict = {}

    def run() -> None:
        try:
            cfg = build_config(output=str(tmp), **kw)
            creds = None
            if cfg.kalshi is not None:
                from harness.venues import kalshi_auth

                creds = kalshi_auth.credentials_from_env(os.environ)
            out["result"] = asyncio.run(run_record(cfg, credentials=creds))
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            out["error"] = e

    t = threading.Thread(target=run, name="harness-record")
    t.start()
    t.join()
    if "error" in out:
        e = out["error"]
        tmp.unlink(missing_ok=True)
        msg = e.message if isinstance(e, HarnessError) else f"{type(e).__name__}: {e}"
        raise HarnessRecordError(f"recording {path} failed: {msg}")
    result = out["result"]
    problem = None
    if result.failed and len(result.failed) == len(result.stats):
        problem = f"every venue failed: {result.failed}"
    elif not any(st.connects for st in result.stats.values()):
        problem = "no venue could be connected (" + "; ".join(
            f"{v}: {st.detail or st.state}" for v, st in result.stats.items()) + ")"
    if problem is not None:  # an empty recording would pass as "recorded" and hide it
        tmp.unlink(missing_ok=True)
        raise HarnessRecordError(f"recording {path} failed: {problem}")
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, path)


def ensure_recording(config, path: Path, record_kw: dict | None = None) -> Path:
    """Apply ``--harness-record-mode`` to ``path``; returns it or raises HarnessRecordError.
    ``record_kw``: the marker's ``record={...}`` (``build_config`` keywords)."""
    mode = config.getoption("--harness-record-mode", "none")
    exists = path.exists()
    if mode == "none" or (mode == "once" and exists):
        if not exists:
            raise HarnessRecordError(f"recording {path} does not exist (--harness-record-mode none)")
        return path
    rec = _recorder(config)
    if rec is None and (record_kw is not None or config.getoption("--harness-record-config", None)):
        kw = dict(record_kw or {})
        cfg_file = config.getoption("--harness-record-config", None)
        if cfg_file and "config_path" not in kw:
            kw["config_path"] = str(_resolve(config, cfg_file))
        _live_record(path, kw)
        return path
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
    names_ok = _check_names()
    bad = [n for n in only if n not in names_ok]
    if bad:
        raise pytest.UsageError(f"--harness-only: unknown check(s) {bad}; use {', '.join(names_ok)}")
    names = [os.path.basename(r) for r in recs]
    for r in recs:
        path = _resolve(config, r)
        label = os.path.basename(r) if names.count(os.path.basename(r)) == 1 else r
        for check in only or names_ok:
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


def _marked_recording(request, fixture: str) -> tuple[Path, dict]:
    m = request.node.get_closest_marker("harness_recording")
    if m is None:
        pytest.fail(f'{fixture} needs @pytest.mark.harness_recording("path/to/rec.db")', pytrace=False)
    if not m.args:
        pytest.fail("harness_recording marker: give the recording path", pytrace=False)
    base = Path(str(request.node.fspath)).parent
    path = _resolve(request.config, m.args[0], base)
    err = None
    try:
        path = ensure_recording(request.config, path, m.kwargs.get("record"))
    except HarnessRecordError as e:
        err = str(e)
    if err is not None:  # outside the except: no "during handling" chain in the report
        pytest.fail(err, pytrace=False)
    return path, dict(m.kwargs)


def _speed(v):
    return None if v in ("max", None) else float(v)


@pytest.fixture
def harness_replay(request):
    path, kw = _marked_recording(request, "harness_replay")
    speed = _speed(kw.get("speed", "max"))
    from harness.replay.source import replay
    from harness.store.reader import Recording

    out = HarnessReplay(path, speed)
    with Recording(path) as rec:
        replay(rec, _Collect(out), speed=speed)
    yield out


@pytest.fixture
def harness_server(request):
    """The marked recording served on 127.0.0.1 (``ServedRecording``: ``.url(venue)``,
    ``.urls``, ``.server`` for its stats and fault log). Marker keywords ``speed`` (default
    1, the recorded pace; ``"max"`` as fast as the client reads), ``loop``, ``faults`` and
    ``auth_key`` (a public key PEM path: signatures are then verified) go to the server."""
    from harness.replay.background import ServedRecording

    path, kw = _marked_recording(request, "harness_server")
    server_kw = {k: kw[k] for k in ("loop", "faults", "auth_key") if k in kw}
    srv = ServedRecording(path, speed=kw.get("speed", 1), **server_kw)
    try:
        srv.start()
    except Exception as e:  # noqa: BLE001 - a failed fixture, said plainly
        pytest.fail(f"harness_server could not serve {path}: {getattr(e, 'message', e)}", pytrace=False)
    try:
        yield srv
    finally:
        srv.stop()
