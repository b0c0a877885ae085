"""Replay: a recording fed back at a chosen speed (``source``), the venue impersonation
server, and fault injection."""
