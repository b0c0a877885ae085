"""The live half: connect to Kalshi and the spot exchanges, stay connected, record every frame.

- ``connection``: ``VenueConnection`` (one venue: auth, subscribe, heartbeats, stale
  detection, reconnect), ``RecordingClientConnection``/``FrameTap`` (every frame, control
  frames included), venue ``Handler`` classes.
- ``manager``: ``run_record(cfg)`` / ``Recorder`` (all venues, rollover, signals, status).
- ``rest``: ``KalshiRest`` (recorded REST), ``Rollover`` (15-minute market rollover).
- ``redact``, ``backoff``: secrets and reconnect delays.
"""
