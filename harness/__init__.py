"""harness: record, replay and check Kalshi + BTC spot venue WebSocket traffic."""

__version__ = "0.1.0"
