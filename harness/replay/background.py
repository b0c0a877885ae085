"""An impersonation server on its own thread and event loop, for code that is not async:
the pytest plugin's ``harness_server`` fixture, a synchronous client under test, a REPL.

    with ServedRecording("recordings/sample.db", speed="max") as srv:
        client.connect(srv.url("kalshi"))

The server is the same ``ImpersonationServer`` that ``harness serve`` runs; only the loop
is private, so the caller's own event loop (pytest-asyncio's, or none) is untouched.
"""

from __future__ import annotations

import asyncio
import os
import threading

from harness.errors import HarnessError


class ServedRecording:
    """Serve ``recording`` from a background thread. Keyword arguments go to
    ``ImpersonationServer`` (``speed``, ``loop``, ``auth_key``, ``faults``, ...)."""

    def __init__(self, recording, *, start_timeout: float = 30.0, **server_kw):
        self.path = os.fspath(recording)
        self.server_kw = server_kw
        self.start_timeout = start_timeout
        self.server = None
        self.urls: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    def url(self, venue: str) -> str:
        try:
            return self.urls[venue]
        except KeyError:
            raise HarnessError(f"{self.path} serves no {venue!r} stream",
                               hint=f"venues in it: {', '.join(sorted(self.urls)) or 'none'}") from None

    def start(self) -> ServedRecording:
        self._thread = threading.Thread(target=self._run, name=f"harness-serve {os.path.basename(self.path)}",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(self.start_timeout):
            raise HarnessError(f"the impersonation server for {self.path} did not start in {self.start_timeout:.0f} s")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as e:  # noqa: BLE001 - handed to the starting thread
            if not self._ready.is_set():
                self._error = e
                self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        from harness.replay.server import ImpersonationServer

        self._stop = asyncio.Event()
        server = ImpersonationServer(self.path, **self.server_kw)
        await server.start()
        self.server = server
        self.urls = dict(server.urls)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.close()

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop ended on its own
                pass
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> ServedRecording:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
