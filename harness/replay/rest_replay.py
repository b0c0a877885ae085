"""REST answers from a recording's ``http`` table, for the impersonation server.

A plain HTTP ``GET`` is answered with the status and body of the *latest* recorded
exchange whose URL path and query parameters (order-insensitive, repeated keys kept)
equal the request's and whose receive time is at or before the replay's current time.
Receive times are put on the recording's timeline as frames are (``t_recv_mono_ns`` plus
the session's offset, else ``t_recv_ns``), so a REST view moves with the stream.

A request before its first recorded answer gets that answer when it was recorded at most
``lead_ns`` ahead of the current time (a client starting up asks its discovery questions
a little before the replay reaches the moment they were recorded; 5 s by default).

Only the GET exchanges of the table with a status are served (a recorded network error
has no response to give); anything else, or a known request asked before its first
recorded answer, is a 404 with a Kalshi-style JSON body. Each exchange is also served
under ``/<venue><path>``; a bare path recorded for two venues is served only that way.
"""

from __future__ import annotations

import bisect
import http
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import orjson

from harness.venues import NAMES
from harness.venues import get as get_venue


@dataclass(frozen=True)
class RestAnswer:
    t_line: int
    http_id: int
    status: int
    body: str
    content_type: str


def query_key(query: str) -> tuple:
    """Order-insensitive form of a query string (repeated keys kept)."""
    return tuple(sorted(parse_qsl(query, keep_blank_values=True)))


def venue_of_url(url: str) -> str | None:
    """The venue whose REST (or WebSocket) endpoints the URL's host belongs to."""
    host = urlsplit(url).hostname
    if not host:
        return None
    for name in NAMES:
        ep = get_venue(name).endpoints
        for known in ep.rest_prod + ep.rest_demo + ep.ws_prod + ep.ws_demo:
            if urlsplit(known).hostname == host:
                return name
    return None


def _content_type(headers) -> str:
    """The recorded Content-Type (headers stored as a JSON object or list of pairs)."""
    if isinstance(headers, str):
        try:
            headers = orjson.loads(headers)
        except orjson.JSONDecodeError:
            headers = None
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    for kv in items:
        if isinstance(kv, (list, tuple)) and len(kv) == 2 and str(kv[0]).lower() == "content-type":
            return str(kv[1])
    return "application/json"


@dataclass
class RestTable:
    """Recorded GET answers by (venue, path, query key), each list sorted by time."""

    answers: dict[tuple, list[RestAnswer]] = field(default_factory=dict)
    times: dict[tuple, list[int]] = field(default_factory=dict)
    path_venues: dict[str, set] = field(default_factory=dict)  # path -> venues recorded at it
    first_t: int | None = None
    skipped: int = 0  # rows not served (not GET, no status, unparsable URL)

    @classmethod
    def load(cls, rec, offsets: dict[int, int]) -> RestTable:
        """From a ``Recording``; ``offsets``: session id -> wall - mono (frames' timeline)."""
        t = cls()
        cur = rec.db.execute(
            "SELECT id, session_id, venue, method, url, status, response_headers, response_body,"
            " t_recv_ns, t_recv_mono_ns FROM http ORDER BY id")
        host_venue: dict[str, str | None] = {}
        for hid, sid, venue, method, url, status, rh, body, t_recv, t_mono in cur:
            if (method or "GET").upper() != "GET" or not isinstance(status, int) or not isinstance(url, str):
                t.skipped += 1
                continue
            if not 100 <= status <= 599:
                t.skipped += 1
                continue
            if isinstance(t_mono, int) and sid in offsets:
                line = t_mono + offsets[sid]
            elif isinstance(t_recv, int):
                line = t_recv
            else:
                t.skipped += 1
                continue
            u = urlsplit(url)
            if not venue:
                if u.hostname not in host_venue:
                    host_venue[u.hostname] = venue_of_url(url)
                venue = host_venue[u.hostname]
            venue = (venue or "").lower() or None
            path = u.path or "/"
            key = (venue, path, query_key(u.query))
            if isinstance(body, bytes):
                body = body.decode("utf-8", "replace")
            t.answers.setdefault(key, []).append(RestAnswer(line, hid, status, body or "", _content_type(rh)))
            t.path_venues.setdefault(path, set()).add(venue)
            if t.first_t is None or line < t.first_t:
                t.first_t = line
        for key, lst in t.answers.items():
            lst.sort(key=lambda a: (a.t_line, a.http_id))
            t.times[key] = [a.t_line for a in lst]
        return t

    def __len__(self) -> int:
        return sum(len(v) for v in self.answers.values())

    def resolve(self, path: str) -> tuple[str | None, str] | None:
        """(venue, recorded path) for a request path, or None when the path is unknown.
        ``/<venue><path>`` names the venue; a bare path must belong to one venue."""
        head, _, rest = path[1:].partition("/")
        if head in NAMES and ("/" + rest) in self.path_venues and head in self.path_venues["/" + rest]:
            return head, "/" + rest
        vs = self.path_venues.get(path)
        if vs is not None and len(vs) == 1:
            return next(iter(vs)), path
        return None

    def lookup(self, path: str, query: str, now_line: int, lead_ns: int = 0) -> RestAnswer | None:
        """The latest answer for the request recorded at or before ``now_line`` (else the
        first one, if recorded at most ``lead_ns`` later)."""
        r = self.resolve(path)
        if r is None:
            return None
        key = (r[0], r[1], query_key(query))
        times = self.times.get(key)
        if not times:
            return None
        i = bisect.bisect_right(times, now_line)
        if i:
            return self.answers[key][i - 1]
        return self.answers[key][0] if times[0] - now_line <= lead_ns else None


def not_found_body(path: str, why: str) -> str:
    """Kalshi's error shape, used for every REST 404."""
    return orjson.dumps({"error": {"code": "not_found", "message": "not found", "details": f"{why}: {path}"[:300]}}).decode()


def response(status: int, body: str, content_type: str = "application/json", extra: dict | None = None):
    """A websockets ``Response`` for any valid status (``reject`` wants an HTTPStatus)."""
    import email.utils

    from websockets.datastructures import Headers
    from websockets.http11 import Response

    data = body.encode("utf-8", "replace")
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    headers = Headers([("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close"),
                       ("Content-Length", str(len(data))), ("Content-Type", content_type)])
    for k, v in (extra or {}).items():
        headers[k] = v
    return Response(status, phrase, headers, data)
