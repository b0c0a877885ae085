"""``harness simulate``: a seeded, protocol-faithful multi-venue session (Kalshi plus
Coinbase, Kraken, Bitstamp and Gemini), served by the impersonation server and captured by
the real recorder. ``price`` (the shared BTC path), ``books`` (exchange ladders),
``exchanges`` and ``kalshi`` (wire formats), ``source`` (the venues' side as a recording),
``rest`` (the REST fetches beside the recorder), ``remap`` (recorder times back onto the
simulated timeline), ``session`` (the whole run)."""
