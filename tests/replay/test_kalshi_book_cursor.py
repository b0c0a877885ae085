"""``KalshiBookCursor``: the books a ``get_snapshot`` answer is built from, read on from the
previous answer instead of rebuilt from the start of the recording. Each answer must equal a
rebuild from scratch at the same point, and a client asking again and again must cost one
pass over the recording, not one per answer."""

from __future__ import annotations

from pathlib import Path

from harness.replay.venue_flows import KalshiBookCursor
from harness.store.reader import Filters, Recording

SAMPLE = Path(__file__).resolve().parents[2] / "recordings" / "sample.db"
KALSHI_IN = Filters(venues=("kalshi",), dir="in", opcodes=("text",))


def _state(books: dict) -> dict:
    """{ticker: (yes levels, no levels, market_id)} of cursor books, as plain data."""
    return {t: (dict(b.yes), dict(b.no), mid) for t, (b, mid) in books.items()}


def test_cursor_answers_equal_rebuilds_and_read_each_row_once():
    with Recording(SAMPLE) as rec:
        rows = list(rec.rows(KALSHI_IN))
        ids = [r[0] for r in rows]
        tickers = {t for r in rows if '"orderbook_snapshot"' in r[7]
                   for t in [r[7].split('"market_ticker":"', 1)[1].split('"', 1)[0]]}
        assert len(tickers) >= 3 and len(ids) > 1000
        points = [ids[len(ids) * k // 12] for k in range(1, 12)] + [ids[-1]]

        cursor = KalshiBookCursor(lambda: rec.rows(KALSHI_IN))
        for fid in points:
            got = _state(cursor.books(tickers, fid))
            fresh = _state(KalshiBookCursor(lambda: rec.rows(KALSHI_IN)).books(tickers, fid))
            assert got == fresh and got, fid
        assert cursor.rows_read == len(rows)  # one pass for twelve answers
        # asked again at the same point (no frame streamed since): nothing more is read
        again = _state(cursor.books(tickers, points[-1]))
        assert again == got and cursor.rows_read == len(rows)

        # a stream that went back (an earlier point than the cursor's) starts again
        early = points[0]
        assert _state(cursor.books(tickers, early)) == _state(
            KalshiBookCursor(lambda: rec.rows(KALSHI_IN)).books(tickers, early))


def test_only_the_tickers_asked_for_and_none_without_a_point():
    with Recording(SAMPLE) as rec:
        cursor = KalshiBookCursor(lambda: rec.rows(KALSHI_IN))
        last = max(r[0] for r in rec.rows(KALSHI_IN))
        assert cursor.books(set(), last) == {} and cursor.books({"X"}, None) == {}
        assert cursor.books({"NO-SUCH-MARKET"}, last) == {}
