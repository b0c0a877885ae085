"""Small builders for tests: real recordings written with the real writer."""

from __future__ import annotations

from harness.store import RecordingWriter


def make_recording(path, frames, *, mode="simulate", venue_urls=None, batch_ms=5.0, classify=True):
    """frames: iterable of (venue, dir, t_wall_ns, t_mono_ns, payload[, opcode]).
    One connection per venue; ``frames.type`` filled by the venue classifiers as the
    recorder does. Returns {venue: conn_id}."""
    from harness import venues

    w = RecordingWriter(path, mode=mode, batch_ms=batch_ms, classify=venues.classify if classify else None)
    conns: dict[str, int] = {}
    for fr in frames:
        venue, d, tw, tm, payload, *rest = fr
        if venue not in conns:
            conns[venue] = w.connection(venue, (venue_urls or {}).get(venue, f"wss://{venue}.example/ws"), tw)
        w.frame(conns[venue], d, tw, tm, rest[0] if rest else "text", payload)
    w.close()
    return conns
