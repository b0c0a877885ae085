"""``harness show REC FRAME_ID``: one frame and its neighbours on the same connection."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import click

from harness.errors import RecordingError
from harness.store.reader import Recording

# Typed in SQL so a damaged row (hand-edited or foreign file) still displays.
_COLS = ("id, session_id, conn_id, iif(typeof(dir) = 'text', dir, '?'),"
         " iif(typeof(t_wall_ns) = 'integer', t_wall_ns, 0), iif(typeof(t_mono_ns) = 'integer', t_mono_ns, 0),"
         " iif(typeof(opcode) = 'text', opcode, '?'),"
         " iif(typeof(payload) IN ('integer', 'real'), CAST(payload AS TEXT), payload),"
         " iif(typeof(type) IN ('text', 'null'), type, CAST(type AS TEXT)), iif(typeof(size) = 'integer', size, 0)")


def _dict(rec: Recording, row) -> dict:
    fid, sid, cid, d, tw, tm, op, payload, typ, size = row
    return {"id": fid, "session_id": sid, "conn_id": cid, "venue": rec.conn_venue.get(cid, "?"), "dir": d,
            "t_wall_ns": tw, "t_mono_ns": tm, "opcode": op, "type": typ, "size": size, "payload": payload}


def neighbours(rec: Recording, frame_row, n: int) -> tuple[list[dict], list[dict]]:
    """Up to ``n`` frames before and after ``frame_row`` on its connection, receive order."""
    fid, sid, cid, _d, _tw, tm = frame_row[:6]
    if n <= 0:
        return [], []
    before = rec.db.execute(
        f"SELECT {_COLS} FROM frames WHERE session_id = ? AND conn_id = ? AND (t_mono_ns < ? OR (t_mono_ns = ? AND id < ?))"
        " ORDER BY t_mono_ns DESC, id DESC LIMIT ?", (sid, cid, tm, tm, fid, n)).fetchall()
    after = rec.db.execute(
        f"SELECT {_COLS} FROM frames WHERE session_id = ? AND conn_id = ? AND (t_mono_ns > ? OR (t_mono_ns = ? AND id > ?))"
        " ORDER BY t_mono_ns, id LIMIT ?", (sid, cid, tm, tm, fid, n)).fetchall()
    return [_dict(rec, r) for r in reversed(before)], [_dict(rec, r) for r in after]


def _t(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%d %H:%M:%S") + f".{ns % 1_000_000_000:09d}"


def _payload_text(p) -> tuple[str, bool]:
    """(display text, is_json)."""
    if isinstance(p, bytes):
        return p.hex(" "), False
    if p is None:
        return "", False
    p = str(p)  # a damaged row's number
    try:
        return json.dumps(json.loads(p), indent=2, ensure_ascii=False), True
    except ValueError:
        return p, False


def _cut(text: str, limit: int) -> tuple[str, bool]:
    if limit and len(text) > limit:
        return text[:limit], True
    return text, False


@click.command(name="show")
@click.argument("recording", type=click.Path(path_type=str))
@click.argument("frame_id", type=int)
@click.option("-C", "--context", default=3, show_default=True, type=click.IntRange(min=0),
              help="Frames to show before and after on the same connection.")
@click.option("--json", "as_json", is_flag=True,
              help="Print {frame, before, after} as JSON (payload as text, or payload_b64 for non-text).")
@click.option("--max-chars", default=4000, show_default=True, type=click.IntRange(min=0),
              help="Cut the frame's payload after this many characters (0 = never).")
def command(recording: str, frame_id: int, context: int, as_json: bool, max_chars: int) -> None:
    """Show frame FRAME_ID of RECORDING (venue, connection, direction, times, opcode,
    type, size, payload pretty-printed when JSON) with --context neighbours before and
    after it in receive order on the same connection."""
    with Recording(recording) as rec:
        row = rec.db.execute(f"SELECT {_COLS} FROM frames WHERE id = ?", (frame_id,)).fetchone()
        if row is None:
            lo, hi = rec.db.execute("SELECT min(id), max(id) FROM frames").fetchone()
            raise RecordingError(f"{recording} has no frame {frame_id}",
                                 hint=f"frame ids run from {lo} to {hi}" if lo is not None else "the recording has no frames")
        frame = _dict(rec, row)
        before, after = neighbours(rec, row, context)
        url = rec.db.execute("SELECT url FROM connections WHERE id = ?", (frame["conn_id"],)).fetchone()
        frame["url"] = url[0] if url else None
    if as_json:
        _emit_json(frame, before, after, max_chars)
        return
    _render(frame, before, after, max_chars)


def _jsonable(f: dict, limit: int) -> dict:
    out = dict(f)
    p = out.pop("payload")
    if isinstance(p, bytes):
        text, cut = _cut(base64.b64encode(p).decode(), limit)
        out["payload_b64"] = text
    else:
        text, cut = _cut(p or "", limit)
        out["payload"] = text
    out["payload_truncated"] = cut
    return out


def _emit_json(frame: dict, before: list, after: list, limit: int) -> None:
    doc = {"frame": _jsonable(frame, limit),
           "before": [_jsonable(f, min(limit, 200) if limit else 200) for f in before],
           "after": [_jsonable(f, min(limit, 200) if limit else 200) for f in after]}
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False))


def _one_line(f: dict, width: int = 110) -> str:
    p = f["payload"]
    text = p.hex(" ") if isinstance(p, bytes) else ("" if p is None else str(p))  # str(): a damaged row's number
    text = text.replace("\n", "\\n")
    if len(text) > width:
        text = text[:width] + "…"
    return text


def _render(frame: dict, before: list, after: list, limit: int) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    con = Console()
    head = Table(show_header=False, box=None, padding=(0, 1))
    head.add_column(style="bold")
    head.add_column()
    for k, v in (("frame", frame["id"]), ("venue", frame["venue"]), ("connection", f"{frame['conn_id']} ({frame['url'] or 'url unknown'})"),
                 ("session", frame["session_id"]), ("dir", frame["dir"]),
                 ("t_wall", f"{_t(frame['t_wall_ns'])} UTC ({frame['t_wall_ns']} ns)"), ("t_mono_ns", frame["t_mono_ns"]),
                 ("opcode", frame["opcode"]), ("type", frame["type"] or "(unclassified)"), ("size", f"{frame['size']:,} bytes")):
        head.add_row(k, escape(str(v)))
    con.print(head)
    text, _is_json = _payload_text(frame["payload"])
    shown, cut = _cut(text, limit)
    con.print(escape(shown), highlight=False, soft_wrap=True)
    if cut:
        con.print(f"[yellow]… truncated: showing {len(shown):,} of {len(text):,} characters (--max-chars 0 shows all)[/yellow]")

    def table(title: str, rows: list) -> None:
        if not rows:
            return
        t = Table(title=title, title_justify="left")
        for c in ("id", "dir", "Δt ms", "type", "size", "payload"):
            if c == "payload":
                t.add_column(c, min_width=30, overflow="fold")
            else:
                t.add_column(c, justify="right" if c in ("id", "Δt ms", "size") else "left", no_wrap=True)
        for f in rows:
            dt = (f["t_mono_ns"] - frame["t_mono_ns"]) / 1e6
            size = f["size"]
            t.add_row(str(f["id"]), str(f["dir"]), f"{dt:+.3f}", str(f["type"] or "-"),  # str(): damaged rows
                      f"{size:,}" if isinstance(size, int) else str(size), escape(_one_line(f, 160)))
        con.print(t)

    table(f"{len(before)} before on connection {frame['conn_id']}", before)
    table(f"{len(after)} after on connection {frame['conn_id']}", after)
