"""Render a ``Report``: a rich terminal table, the JSON document, one self-contained HTML
file (matplotlib PNGs embedded as base64: latency histogram per venue; message rate over
time per venue with silences shaded and reconnects marked; the REST and stream views of a
price over time when the recording holds REST polls)."""

from __future__ import annotations

import base64
import html
import io
import json

from harness.checks.runner import Report

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "info": "cyan"}


def render_terminal(report: Report, console=None, max_findings: int = 10) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title=f"harness check {report.path or ''}", show_lines=False)
    for col in ("check", "status", "findings", "worst example"):
        t.add_column(col, overflow="fold")
    for r in report.results:
        c = r.counts()
        counts = ", ".join(f"{n} {s}" for s, n in c.items() if n) or "-"
        if r.spec_findings:
            counts += f" (+{sum(f.count for f in r.spec_findings)} spec)"
        w = r.worst
        ex = "-" if w is None else _esc(w.line())
        t.add_row(r.name, f"[{_STYLE[r.status]}]{r.status}[/]", counts, ex)
    console.print(t)
    fresh = freshness_rows(report)
    if fresh:
        ft = Table(title="freshness: REST poller's view vs the stream (seconds)", show_lines=False)
        for col in FRESHNESS_COLUMNS:
            ft.add_column(col, justify="left" if col == "venue" else "right")
        for row in fresh:
            ft.add_row(*row)
        console.print(ft)
    for r in report.results:
        items = [f for f in r.findings if f.severity != "info"][:max_findings]
        spec = r.spec_findings[:max_findings]
        if not items and not spec:
            continue
        console.print(f"[bold]{r.name}[/]")
        for f in items:
            console.print(f"  [{_STYLE[f.severity]}]{f.severity}[/] {_esc(f.line()[5:])}")
            if f.example:
                console.print(f"      {_esc(f.example[:160])}", style="dim")
        if spec:
            console.print("  [bold]against the published spec[/] (blame = which side is wrong)")
            for f in spec:
                console.print(f"  [{_STYLE[f.severity]}]{f.severity}[/] blame={f.blame} {_esc(f.line()[5:])}")
    console.print(f"[{_STYLE[report.status]}]{report.status.upper()}[/]: {report.frames} frames in {report.wall_s:.2f} s. "
                  f"Look at a frame: harness show {report.path or 'REC'} FRAME_ID")


FRESHNESS_COLUMNS = ("venue", "poll every", "stale mean", "p50", "p90", "max", "age mean", "stream->REST p50", "REST first")


def freshness_rows(report: Report) -> list[tuple[str, ...]]:
    """One row per venue of the freshness check's stats (empty without REST polls)."""
    try:
        venues = report.result("freshness").stats.get("venues") or {}
    except KeyError:
        return []

    def g(d, k):
        v = (d or {}).get(k)
        return "-" if v is None else f"{v:g}"

    out = []
    for venue, v in venues.items():
        st, back = v.get("staleness"), v.get("rest_to_stream") or {}
        out.append((venue, g(v, "poll_interval_s"), g(st, "mean_s"), g(st, "p50_s"), g(st, "p90_s"), g(st, "max_s"),
                    g(v.get("age"), "mean_s"), g(v.get("stream_to_rest"), "p50_s"), str(back.get("n", 0))))
    return out


def _esc(s: str) -> str:
    from rich.markup import escape

    return escape(s)


def to_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, default=str)


# ------------------------------------------------------------------------------ HTML


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def charts(report: Report) -> list[tuple[str, str]]:
    """(title, base64 PNG) pairs."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out = []
    lat = report.series.get("latency", {})
    for venue, vals in sorted(lat.get("latency_ms", {}).items()):
        if not vals:
            continue
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.hist(vals, bins=min(60, max(5, len(vals) // 5)), color="#4472c4")
        ax.set_title(f"{venue}: receive - venue timestamp (ms), n={len(vals)}")
        ax.set_xlabel("ms")
        ax.set_ylabel("messages")
        out.append((f"latency histogram: {venue}", _png(fig)))
    rate = lat.get("rate", {})
    if rate:
        fig, ax = plt.subplots(figsize=(9, 3.5))
        t0 = min(min(r) for r in rate.values() if r)
        for venue, buckets in sorted(rate.items()):
            xs = sorted(buckets)
            ax.plot([x - t0 for x in xs], [buckets[x] for x in xs], label=venue, lw=1)
        for g in lat.get("gaps", []):
            ax.axvspan(g["start_ns"] / 1e9 - t0, g["end_ns"] / 1e9 - t0, color="red", alpha=0.2)
        for r in report.series.get("reconnects", []):
            ax.axvline(r / 1e9 - t0, color="black", ls="--", lw=1)
        ax.set_title("inbound messages per second (red: silences, dashed: reconnects)")
        ax.set_xlabel(f"s since {t0} (Unix)")
        ax.set_ylabel("frames/s")
        ax.legend(loc="upper right", fontsize=8)
        out.append(("message rate", _png(fig)))
    for key, views in report.series.get("freshness", {}).get("views", {}).items():
        if not views["rest"]:
            continue
        fig, ax = plt.subplots(figsize=(9, 3.5))
        t0 = views["rest"][0][0]
        for name, pts, style in (("stream (WebSocket)", views["stream"], {"color": "#4472c4", "lw": 1}),
                                 ("REST poller", views["rest"], {"color": "#c55a11", "lw": 1.5, "marker": "o", "ms": 3})):
            if pts:
                ax.step([(t - t0) / 1e9 for t, _ in pts], [float("nan") if v is None else v for _, v in pts],
                        where="post", label=name, **style)
        ax.set_title(f"{key}: the two views over time")
        ax.set_xlabel(f"s since the first REST response ({t0 / 1e9:.0f} Unix)")
        ax.legend(loc="best", fontsize=8)
        out.append((f"freshness: {key}", _png(fig)))
    return out


def render_html(report: Report) -> str:
    e = html.escape
    d = report.to_dict()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>harness check</title><style>",
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}",
        ".pass{color:#080}.warn{color:#b80}.fail{color:#c00;font-weight:bold}.info{color:#06a}code{font-size:90%}",
        "</style></head><body>",
        f"<h1>harness check: {e(str(report.path))}</h1>",
        f"<p>Status <span class='{report.status}'>{report.status.upper()}</span>; {report.frames} frames checked in {report.wall_s:.2f} s. "
        f"Look at a frame with <code>harness show {e(str(report.path))} FRAME_ID</code>.</p>",
        "<table><tr><th>check</th><th>status</th><th>findings</th><th>worst example</th></tr>",
    ]
    for r in report.results:
        w = r.worst
        c = ", ".join(f"{n} {s}" for s, n in r.counts().items() if n) or "-"
        parts.append(f"<tr><td>{r.name}</td><td class='{r.status}'>{r.status}</td><td>{e(c)}</td><td>{e(w.line()) if w else '-'}</td></tr>")
    parts.append("</table>")
    fresh = freshness_rows(report)
    if fresh:
        parts.append("<h2>freshness: REST poller's view vs the stream (seconds)</h2><table><tr>"
                     + "".join(f"<th>{e(c)}</th>" for c in FRESHNESS_COLUMNS) + "</tr>")
        for row in fresh:
            parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
        parts.append("</table>")
    for title, png in charts(report):
        parts.append(f"<h2>{e(title)}</h2><img alt='{e(title)}' src='data:image/png;base64,{png}'>")
    for r in d["checks"]:
        rows = r["findings"] + r["spec_findings"]
        if not rows:
            continue
        parts.append(f"<h2>{r['name']}</h2><table><tr><th>severity</th><th>code</th><th>venue</th><th>count</th><th>first frame</th><th>message</th><th>example</th></tr>")
        for f in rows:
            blame = f" (blame: {f['blame']})" if f.get("blame") else ""
            parts.append(
                f"<tr><td class='{f['severity']}'>{f['severity']}</td><td>{e(f['code'])}</td><td>{e(str(f['venue']))}</td>"
                f"<td>{f['count']}</td><td>{f['first_frame_id'] if f['first_frame_id'] is not None else '-'}</td>"
                f"<td>{e(f['message'])}{e(blame)}</td><td><code>{e(f['example'] or '')}</code></td></tr>"
            )
        parts.append("</table>")
    parts.append(f"<h2>stats</h2><pre>{e(json.dumps({r['name']: r['stats'] for r in d['checks']}, indent=1, default=str))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
