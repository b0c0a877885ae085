"""``harness record`` configuration: defaults, a TOML file (``--config harness.toml``) and
command-line overrides, merged in that order into a ``RecordConfig``.

TOML layout (every key optional; unknown keys are an error so typos do not pass silently)::

    output = "recordings/run.db"
    duration = "15m"                 # or seconds
    env = "prod"                     # prod | demo (Kalshi endpoints)
    exchanges = ["coinbase", "kraken", "bitstamp", "gemini", "cryptocom"]
    decode = false                   # keep venue books while recording (findings -> events);
                                     # an exchange book gap or checksum mismatch then reconnects
                                     # for a fresh snapshot (per venue: resync = false to keep going)
    rest_poll = "5s"                 # also poll Kalshi markets and exchange tickers over REST
                                     # this often (off when absent; see harness.live.rest_poll)

    [rest_rates]                     # REST requests per second per host (rest_poll defaults
    "api.kraken.com" = 1.0           # in harness.live.rest_poll.DEFAULT_RATES)

    [kalshi]
    series = ["KXBTC15M"]
    markets = []                     # pinned tickers, recorded for the whole run
    channels = ["orderbook_delta", "ticker", "trade", "market_lifecycle_v2"]
    rest_url = "https://external-api.kalshi.com/trade-api/v2"
    rollover_lead = "60s"            # look for the next market this long before a close
    close_grace = "5s"               # rediscover this long after a close (and drop the closed
                                     # market then when market_lifecycle_v2 is not recorded)
    determined_grace = "120s"        # else keep a closed market until its determined/settled
                                     # lifecycle message, at most this long after its close
    settle_fetch = "20s"             # GET /markets/{ticker} this long after each close (the
                                     # settlement index value); 0 = off
    settle_retry = "30s"             # again this often while not determined,
    settle_retries = 5               # at most this many more times
    poll = "60s"                     # rediscover at least this often

    [backoff]
    base = 0.5                       # seconds
    cap = 30
    reset_after = 30                 # a connection healthy this long resets the backoff
    auth_failures_max = 3            # 401/403 this many times in a row stops the venue

    [venues.kraken]                  # any venue, including kalshi
    url = "wss://ws.kraken.com/v2"
    rest_url = "https://api.kraken.com"          # REST base for rest_poll (exchanges)
    channels = ["book", "trade"]
    instruments = ["BTC/USD"]
    depth = 100
    subscribe = ['{"method":"subscribe", ...}']   # raw frames instead of the built ones
    stale_timeout = 30               # no inbound frame for this long -> reconnect
    ping_interval = 20               # WebSocket pings from us (null: off)
    ping_timeout = 20
    app_ping_interval = 15           # venue-level ping (Kraken)
    subscribe_delay = 0              # wait after connecting before subscribing (Crypto.com: 1)
    compression = true               # permessage-deflate
    open_timeout = 10
    max_size = 67108864

Secrets never come from this file's CLI twin: Kalshi credentials are read from
``KALSHI_API_KEY_ID`` / ``KALSHI_PRIVATE_KEY_PATH`` (see ``harness.venues.kalshi_auth``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import ConfigError
from harness.timeparse import parse_duration_s

EXCHANGES = ("coinbase", "kraken", "bitstamp", "gemini", "cryptocom")
KALSHI_CHANNELS = ("orderbook_delta", "ticker", "trade", "market_lifecycle_v2")

# Used when a venue module is missing or has no endpoints.
_FALLBACK_WS = {
    "kalshi": ("wss://external-api-ws.kalshi.com/trade-api/ws/v2", "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2"),
    "coinbase": ("wss://advanced-trade-ws.coinbase.com", None),
    "kraken": ("wss://ws.kraken.com/v2", None),
    "bitstamp": ("wss://ws.bitstamp.net", None),
    "gemini": ("wss://api.gemini.com/v2/marketdata", None),
    "cryptocom": ("wss://stream.crypto.com/exchange/v1/market", None),
}
_FALLBACK_REST = ("https://external-api.kalshi.com/trade-api/v2", "https://external-api.demo.kalshi.co/trade-api/v2")

# Per-venue defaults. Heartbeat intervals: Kalshi pings every 10 s, Coinbase heartbeats
# every 1 s, Kraken heartbeats when idle, Gemini every ~5 s, Crypto.com every 30 s;
# Bitstamp has none (the diff book is busy enough).
VENUE_DEFAULTS: dict[str, dict[str, Any]] = {
    "kalshi": {"channels": list(KALSHI_CHANNELS), "instruments": [], "stale_timeout": 30.0},
    "coinbase": {"channels": ["level2", "market_trades", "heartbeats"], "instruments": ["BTC-USD"], "stale_timeout": 30.0},
    "kraken": {"channels": ["book", "trade"], "instruments": ["BTC/USD"], "depth": 100, "stale_timeout": 30.0, "app_ping_interval": 15.0},
    "bitstamp": {"channels": ["diff_order_book", "live_trades"], "instruments": ["btcusd"], "stale_timeout": 60.0},
    "gemini": {"channels": ["l2"], "instruments": ["BTCUSD"], "stale_timeout": 30.0},
    "cryptocom": {"channels": ["book", "trade"], "instruments": ["BTC_USD"], "depth": 50, "stale_timeout": 75.0, "subscribe_delay": 1.0},
}

_VENUE_KEYS = {
    "url", "rest_url", "channels", "instruments", "depth", "subscribe", "stale_timeout", "ping_interval", "ping_timeout",
    "app_ping_interval", "subscribe_delay", "compression", "open_timeout", "max_size", "resync", "resync_min_interval",
}
_TOP_KEYS = {"output", "duration", "env", "exchanges", "decode", "kalshi", "backoff", "venues", "rest_poll", "rest_rates"}
_KALSHI_KEYS = {"series", "markets", "channels", "rest_url", "rollover_lead", "close_grace", "poll", "url",
                "determined_grace", "settle_fetch", "settle_retry", "settle_retries"}
_BACKOFF_KEYS = {"base", "cap", "reset_after", "auth_failures_max", "seed"}


@dataclass
class VenueConfig:
    name: str
    url: str
    channels: list[str] = field(default_factory=list)
    instruments: list[str] = field(default_factory=list)
    depth: int | None = None
    subscribe: list[str] | None = None  # raw frames overriding the built ones
    stale_timeout: float | None = 30.0
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    app_ping_interval: float | None = None
    subscribe_delay: float = 0.0
    compression: bool = True
    open_timeout: float = 10.0
    max_size: int = 64 * 1024 * 1024  # Coinbase's BTC-USD snapshot is ~5 MB
    rest_url: str | None = None  # exchanges: REST base for rest_poll (None: the public one)
    # With decode on: an exchange book that lost an update (sequence gap, checksum
    # mismatch) is unusable until a new snapshot, which only a new subscription brings:
    # reconnect, at most once per resync_min_interval seconds (as cryptofeed does).
    resync: bool = True
    resync_min_interval: float = 10.0


@dataclass
class KalshiConfig:
    series: list[str] = field(default_factory=list)
    markets: list[str] = field(default_factory=list)
    rest_url: str = _FALLBACK_REST[0]
    rollover_lead_s: float = 60.0
    close_grace_s: float = 5.0
    poll_s: float = 60.0
    determined_grace_s: float = 120.0  # max hold of a closed market awaiting `determined`
    settle_fetch_s: float = 20.0  # GET /markets/{ticker} this long after a close (0: off)
    settle_retry_s: float = 30.0
    settle_retries: int = 5


@dataclass
class BackoffConfig:
    base: float = 0.5
    cap: float = 30.0
    reset_after: float = 30.0
    auth_failures_max: int = 3
    seed: int | None = None


@dataclass
class RecordConfig:
    output: str
    venues: dict[str, VenueConfig]
    kalshi: KalshiConfig | None = None
    duration_s: float | None = None
    env: str = "prod"
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    decode: bool = False
    status: bool | None = None  # None: a live status line when stderr is a TTY
    rest_poll_s: float | None = None  # poll REST beside the stream this often (None: off)
    rest_rates: dict[str, float] = field(default_factory=dict)  # host -> requests/s

    def to_json(self) -> dict:
        """For the session row (no secrets are ever in here)."""
        from harness.live.redact import redact_url

        d = asdict(self)
        for v in d["venues"].values():
            v["url"] = redact_url(v["url"])
            if v.get("rest_url"):
                v["rest_url"] = redact_url(v["rest_url"])
        return d


def default_ws_url(venue: str, env: str = "prod") -> str:
    try:
        from harness import venues

        ep = venues.get(venue).endpoints
        urls = ep.ws_demo if (env == "demo" and venue == "kalshi") else ep.ws_prod
        if urls:
            return urls[0]
    except Exception:  # noqa: BLE001 - a venue module still being written: use our fallback
        pass
    prod, demo = _FALLBACK_WS[venue]
    return demo if (env == "demo" and demo) else prod


def default_rest_url(env: str = "prod") -> str:
    try:
        from harness import venues

        ep = venues.get("kalshi").endpoints
        urls = ep.rest_demo if env == "demo" else ep.rest_prod
        if urls:
            return urls[0]
    except Exception:  # noqa: BLE001
        pass
    return _FALLBACK_REST[1] if env == "demo" else _FALLBACK_REST[0]


def load_toml(path: str | os.PathLike) -> dict:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    _check_keys(data, _TOP_KEYS, str(path))
    for sect, keys in (("kalshi", _KALSHI_KEYS), ("backoff", _BACKOFF_KEYS)):
        if sect in data:
            _check_keys(data[sect], keys, f"{path} [{sect}]")
    for name, v in (data.get("venues") or {}).items():
        if name not in _FALLBACK_WS:
            raise ConfigError(f"{path}: unknown venue [venues.{name}]", hint=f"use one of {', '.join(_FALLBACK_WS)}")
        _check_keys(v, _VENUE_KEYS, f"{path} [venues.{name}]")
    return data


def _check_keys(d: Any, allowed: set[str], where: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a table")
    bad = set(d) - allowed
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(bad))}", hint=f"allowed: {', '.join(sorted(allowed))}")


def _dur(v, what: str) -> float:
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return parse_duration_s(str(v))
    except ConfigError:
        raise ConfigError(f"bad duration for {what}: {v!r}", hint="use e.g. 30s, 15m, 2h") from None


def _count(v, what: str) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    raise ConfigError(f"bad count for {what}: {v!r}", hint="use a whole number >= 0, e.g. 5")


def _split(values) -> list[str]:
    out: list[str] = []
    for v in values or ():
        out.extend(x.strip() for x in str(v).split(",") if x.strip())
    return out


def parse_overrides(items, what: str) -> dict[str, str]:
    """``VENUE=URL`` pairs."""
    out = {}
    for item in items or ():
        name, sep, url = str(item).partition("=")
        name = name.strip().lower()
        if not sep or not name or not url.strip():
            raise ConfigError(f"bad {what} {item!r}", hint=f"use {what} VENUE=URL, e.g. kraken=ws://127.0.0.1:8765/v2")
        if name not in _FALLBACK_WS:
            raise ConfigError(f"unknown venue {name!r} in {what} {item!r}", hint=f"use one of {', '.join(_FALLBACK_WS)}")
        out[name] = url.strip()
    return out


def _check_url(url: str, venue: str, schemes: tuple[str, ...]) -> str:
    from urllib.parse import urlsplit

    try:
        u = urlsplit(url)
    except ValueError:
        u = None
    if u is None or u.scheme not in schemes or not u.hostname:
        raise ConfigError(f"bad URL for {venue}: {url!r}", hint=f"expected {' or '.join(s + '://host/...' for s in schemes)}")
    return url


def build_config(
    *,
    output: str | None = None,
    config_path: str | None = None,
    kalshi_series: list[str] | None = None,
    kalshi_markets: list[str] | None = None,
    kalshi_channels: list[str] | None = None,
    exchanges: str | None = None,
    duration: str | None = None,
    env: str | None = None,
    urls: list[str] | None = None,
    rest_urls: list[str] | None = None,
    decode: bool | None = None,
    rest_poll: str | float | None = None,
) -> RecordConfig:
    """Defaults < TOML file < command line. ``exchanges=None``: from the file, else all five;
    ``exchanges=""``: none. Kalshi is recorded when a series or a market is given."""
    data = load_toml(config_path) if config_path else {}
    env = env or data.get("env", "prod")
    if env not in ("prod", "demo"):
        raise ConfigError(f"bad env {env!r}", hint="use prod or demo")
    out = output or data.get("output")
    if not out:
        raise ConfigError("no output file", hint="pass -o recordings/NAME.db")

    if exchanges is not None:
        ex_list = _split([exchanges])
    elif "exchanges" in data:
        ex_list = [str(x).strip().lower() for x in data["exchanges"]]
    else:
        ex_list = list(EXCHANGES)
    from harness.venues import _ALIASES

    ex_list = [_ALIASES.get(x.lower(), x.lower()) for x in ex_list]
    for x in ex_list:
        if x not in EXCHANGES:
            raise ConfigError(f"unknown exchange {x!r}", hint=f"use some of {','.join(EXCHANGES)}")
    ex_list = list(dict.fromkeys(ex_list))

    kd = data.get("kalshi") or {}
    series = _split(kalshi_series) or [str(s) for s in kd.get("series", [])]
    markets = _split(kalshi_markets) or [str(s) for s in kd.get("markets", [])]
    kalshi = None
    if series or markets:
        kalshi = KalshiConfig(
            series=[s.upper() for s in series],
            markets=[m.upper() for m in markets],
            rest_url=kd.get("rest_url") or default_rest_url(env),
            rollover_lead_s=_dur(kd.get("rollover_lead", 60.0), "kalshi.rollover_lead"),
            close_grace_s=_dur(kd.get("close_grace", 5.0), "kalshi.close_grace"),
            poll_s=_dur(kd.get("poll", 60.0), "kalshi.poll"),
            determined_grace_s=_dur(kd.get("determined_grace", 120.0), "kalshi.determined_grace"),
            settle_fetch_s=_dur(kd.get("settle_fetch", 20.0), "kalshi.settle_fetch"),
            settle_retry_s=_dur(kd.get("settle_retry", 30.0), "kalshi.settle_retry"),
            settle_retries=_count(kd.get("settle_retries", 5), "kalshi.settle_retries"),
        )
    rest_over = parse_overrides(rest_urls, "--rest-url")
    if kalshi is not None and "kalshi" in rest_over:
        kalshi.rest_url = rest_over["kalshi"]
    if kalshi is not None:
        _check_url(kalshi.rest_url, "kalshi REST", ("http", "https"))

    url_over = parse_overrides(urls, "--url")
    vdata = data.get("venues") or {}
    wanted = (["kalshi"] if kalshi is not None else []) + ex_list
    venues: dict[str, VenueConfig] = {}
    for name in wanted:
        d: dict[str, Any] = {k: (list(v) if isinstance(v, list) else v) for k, v in VENUE_DEFAULTS[name].items()}
        d.update(vdata.get(name) or {})
        if name == "kalshi":
            if kd.get("url"):
                d["url"] = kd["url"]
            if kd.get("channels"):
                d["channels"] = list(kd["channels"])
            if kalshi_channels:
                d["channels"] = _split(kalshi_channels)
        url = url_over.get(name) or d.pop("url", None) or default_ws_url(name, env)
        d.pop("url", None)
        for k in ("stale_timeout", "ping_interval", "ping_timeout", "app_ping_interval", "subscribe_delay", "open_timeout",
                  "resync_min_interval"):
            if k in d and d[k] is not None:
                d[k] = _dur(d[k], f"venues.{name}.{k}")
        if name != "kalshi" and (rest_over.get(name) or d.get("rest_url")):
            d["rest_url"] = _check_url(rest_over.get(name) or d["rest_url"], f"{name} REST", ("http", "https"))
        elif name == "kalshi":
            d.pop("rest_url", None)  # Kalshi's lives in [kalshi] rest_url
        venues[name] = VenueConfig(name=name, url=_check_url(url, name, ("ws", "wss")), **d)
    for name in rest_over:
        if name not in venues:
            raise ConfigError(f"--rest-url {name}=... given but {name} is not being recorded",
                              hint="add it to --exchanges (or give a Kalshi series/market)")
    for name in url_over:
        if name not in venues:
            raise ConfigError(f"--url {name}=... given but {name} is not being recorded",
                              hint="add it to --exchanges (or give a Kalshi series/market)")
    if not venues:
        raise ConfigError("nothing to record", hint="give --kalshi-series/--kalshi-market and/or --exchanges")

    bd = data.get("backoff") or {}
    backoff = BackoffConfig(
        base=_dur(bd.get("base", 0.5), "backoff.base"),
        cap=_dur(bd.get("cap", 30.0), "backoff.cap"),
        reset_after=_dur(bd.get("reset_after", 30.0), "backoff.reset_after"),
        auth_failures_max=int(bd.get("auth_failures_max", 3)),
        seed=bd.get("seed"),
    )
    dur = duration if duration is not None else data.get("duration")
    poll = rest_poll if rest_poll is not None else data.get("rest_poll")
    poll_s = _dur(poll, "rest_poll") if poll not in (None, "", 0) else None
    if poll_s is not None and poll_s <= 0:
        raise ConfigError(f"bad rest_poll {poll!r}: must be positive", hint="e.g. --rest-poll 5")
    rates = data.get("rest_rates") or {}
    if not isinstance(rates, dict) or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0 for v in rates.values()):
        raise ConfigError(f"{config_path}: [rest_rates] maps a host to requests per second (a positive number)")
    return RecordConfig(
        output=str(out),
        venues=venues,
        kalshi=kalshi,
        duration_s=_dur(dur, "duration") if dur not in (None, "", 0) else None,
        env=env,
        backoff=backoff,
        decode=bool(decode if decode is not None else data.get("decode", False)),
        rest_poll_s=poll_s,
        rest_rates={str(k): float(v) for k, v in rates.items()},
    )
