"""format: every inbound text frame parses, classifies to a known type and decodes with
the venue model.

Codes (against the harness's own models, ``findings``):
- ``invalid_json`` (fail): an inbound text frame is not JSON.
- ``decode_error`` (fail): JSON, but the venue model rejects it (missing/ill-typed field).
- ``decoder_crash`` (fail): the venue module raised something other than DecodeError (a bug).
- ``unknown_type`` (warn): the classifier does not know the frame's shape/type.
- ``unknown_venue`` (warn): frames of a venue the harness has no module for (not decoded).
- ``legacy_era`` / ``mixed_era`` (warn, Kalshi): cents-era fields (removed 2026-03-12),
  alone or next to their fixed-point replacements; ``legacy_type`` (warn): a type the
  current API no longer sends (``ticker_v2``, ``multivariate_lookup``).
- ``unknown_field`` (warn, Kalshi): a field the harness model does not declare: drift.

Against a published spec (``--spec kalshi=PATH``, ``spec_findings``): ``spec_<kind>``
(``spec_missing_required``, ``spec_pattern``, ``spec_extra_field`` ...), each saying
which side is wrong (``blame``): ``spec`` when the real frame decodes with the harness
model and the spec disagrees, ``frame`` when the frame is cents-era or undecodable,
``erratum`` (info) when the errata file explains it as a known spec bug.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

from harness.checks.base import BaseCheck

KALSHI_TYPES = frozenset(
    {
        "orderbook_snapshot", "orderbook_delta", "ticker", "trade", "fill", "market_position",
        "market_lifecycle_v2", "multivariate_market_lifecycle", "event_lifecycle", "event_fee_update",
        "order_group_updates", "user_order", "cfbenchmarks_value", "cfbenchmarks_value_indexlist",
        "pyth_value", "pyth_value_underlying_list", "rfq_created", "rfq_deleted", "quote_created",
        "quote_accepted", "quote_executed", "quote_cancelled", "subscribed", "unsubscribed", "ok",
        "error", "communications",
    }
)
KALSHI_REMOVED_TYPES = frozenset({"ticker_v2", "multivariate_lookup"})


def _struct_fields(tp, depth: int = 0) -> dict | None:
    """{encode_name: nested map or None} for a msgspec Struct type, else None."""
    import msgspec

    info = tp if isinstance(tp, msgspec.inspect.Type) else msgspec.inspect.type_info(tp)
    if isinstance(info, msgspec.inspect.UnionType):
        for t in info.types:
            r = _struct_fields(t, depth)
            if r is not None:
                return r
        return None
    if not isinstance(info, msgspec.inspect.StructType) or depth > 3:
        return None
    return {f.encode_name: _struct_fields(f.type, depth + 1) for f in info.fields}


_KALSHI_MODEL: dict | None = None


def kalshi_model_fields() -> dict:
    """type -> declared field tree of the harness's Kalshi decoders (drift detection)."""
    global _KALSHI_MODEL
    if _KALSHI_MODEL is None:
        from harness.venues import kalshi

        out = {}
        for t, dec in getattr(kalshi, "_DECODERS", {}).items():
            tree = _struct_fields(dec.type)
            if tree is not None:
                out[t] = tree
        _KALSHI_MODEL = out
    return _KALSHI_MODEL


def _unknown_fields(obj, tree: dict, path: str = "") -> list[str]:
    out = []
    if not isinstance(obj, dict):
        return out
    for k, v in obj.items():
        p = f"{path}.{k}" if path else k
        if k not in tree:
            out.append(p)
        elif isinstance(tree[k], dict) and isinstance(v, dict):
            out.extend(_unknown_fields(v, tree[k], p))
    return out


class FormatCheck(BaseCheck):
    name = "format"
    description = "every inbound frame parses, classifies and decodes with the venue model"

    def __init__(self, config=None):
        super().__init__(config)
        self.specs: dict = {}
        self.errata = None
        self.by_type: Counter = Counter()
        self.eras: Counter = Counter()
        self.checked = 0
        self.spec_checked = 0

    def configure_spec(self, specs: dict, errata=None) -> None:
        """``specs``: venue -> Spec or path; ``errata``: Errata, path, or None (the shipped
        Kalshi errata when a Kalshi spec is given)."""
        from harness.venues import kalshi_spec

        self.specs = {k.lower(): (v if isinstance(v, kalshi_spec.Spec) else kalshi_spec.load_spec(Path(v))) for k, v in specs.items()}
        if errata is None and "kalshi" in self.specs:
            errata = kalshi_spec.default_kalshi_errata()
        elif errata is not None and not isinstance(errata, kalshi_spec.Errata):
            errata = kalshi_spec.load_errata(errata)
        self.errata = errata
        for v, s in self.specs.items():
            self.notes.append(f"{v}: validated against {s.source} (errata: {errata.source if errata else 'none'})")

    def on_frame(self, view) -> None:
        f = view.frame
        if f.dir != "in" or f.opcode != "text":
            return
        self.checked += 1
        if not view.venue_known:
            self.emit("unknown_venue", "warn", f"no venue module for {f.venue!r}: frames not decoded", frame=f)
            return
        self.by_type[(f.venue, view.type)] += 1
        obj = None
        if view.error is not None or view.type is None or f.venue in self.specs or f.venue == "kalshi":
            try:
                obj = orjson.loads(f.payload)
            except orjson.JSONDecodeError as e:
                self.emit("invalid_json", "fail", f"inbound text frame is not JSON ({e})", frame=f)
                return
        if view.crash is not None:
            self.emit("decoder_crash", "fail", f"the {f.venue} module raised {view.crash} (a harness bug)", frame=f)
        elif view.error is not None:
            self.emit("decode_error", "fail", f"does not decode with the {f.venue} model: {view.error}", frame=f, subject=view.type)
        if view.type is None:
            self.emit("unknown_type", "warn", f"{f.venue} frame of an unknown shape/type (classifier returned none)", frame=f)
        if f.venue == "kalshi":
            self._kalshi(view, obj)
        spec = self.specs.get(f.venue)
        if spec is not None and obj is not None:
            self._spec(view, obj, spec)

    def _kalshi(self, view, obj) -> None:
        from harness.venues import kalshi

        f = view.frame
        t = view.type
        if t is not None and not t.startswith("cmd:"):
            if t in KALSHI_REMOVED_TYPES:
                self.emit("legacy_type", "warn", f"type {t!r} is no longer sent by the current API", frame=f, subject=t)
            elif t not in KALSHI_TYPES and not (self.specs.get("kalshi") and t in self.specs["kalshi"].messages):
                self.emit("unknown_type", "warn", f"Kalshi type {t!r} is not a known message type", frame=f, subject=t)
        rep = kalshi.era_report(obj if isinstance(obj, dict) else f.payload)
        self.eras[rep.era] += 1
        if rep.era == "legacy":
            self.emit(
                "legacy_era", "warn",
                f"{t}: cents-era field(s) {', '.join(rep.legacy_fields)} (removed 2026-03-12); code must read the fixed-point *_dollars/*_fp fields",
                frame=f, subject=t,
            )
        elif rep.era == "mixed":
            self.emit(
                "mixed_era", "warn",
                f"{t}: cents-era field(s) {', '.join(rep.legacy_fields)} next to {', '.join(rep.current_fields)} (Jan-Mar 2026 transition format)",
                frame=f, subject=t,
            )
        tree = kalshi_model_fields().get(t or "")
        if tree is not None and isinstance(obj, dict) and view.error is None:
            for p in _unknown_fields(obj, tree):
                self.emit(
                    "unknown_field", "warn",
                    f"{t}: field {p!r} is not in the harness model (format drift: new field?)",
                    frame=f, subject=f"{t}.{p}",
                )

    def _spec(self, view, obj, spec) -> None:
        from harness.venues import kalshi

        f = view.frame
        self.spec_checked += 1
        res = spec.validate(obj, self.errata)
        era = kalshi.detect_era(obj) if f.venue == "kalshi" else "current"
        frame_side = view.error is not None or era in ("legacy", "mixed")
        for sf in res.findings:
            blame = "frame" if frame_side else "spec"
            if blame == "spec":
                why = "the frame decodes with the harness model: the spec is stricter than, or behind, the traffic"
                if sf.kind == "extra_field":
                    why = "the spec does not declare a field real frames carry (spec omission or new field)"
            else:
                why = "frame is cents-era for this spec" if era in ("legacy", "mixed") else "frame does not decode with the harness model either"
            self.emit(
                f"spec_{sf.kind}", "warn",
                f"{res.type}: spec says: {sf.message} [{why}]",
                frame=f, subject=f"{res.type}:{_norm(sf.path)}", blame=blame, spec=True,
                detail={"path": sf.path, "kind": sf.kind, "spec": spec.source, "value": _short(sf.value)},
            )
        for sf in res.errata:
            self.emit(
                f"spec_{sf.kind}", "info",
                f"{res.type}: spec says: {sf.message}; erratum: {sf.erratum}",
                frame=f, subject=f"{res.type}:{_norm(sf.path)}", blame="erratum", spec=True,
                detail={"path": sf.path, "kind": sf.kind, "spec": spec.source, "erratum": sf.erratum, "value": _short(sf.value)},
            )

    def finish(self):
        self.stats = {
            "frames_checked": self.checked,
            "frames_spec_checked": self.spec_checked,
            "types": [{"venue": v, "type": t, "frames": n} for (v, t), n in sorted(self.by_type.items(), key=lambda x: (x[0][0], -x[1]))],
            "kalshi_eras": dict(self.eras),
        }
        return super().finish()


def _norm(path: str) -> str:
    import re

    return re.sub(r"\[\d+\]", "[]", path)


def _short(v):
    if v is None or isinstance(v, (int, float, bool)):
        return v
    s = str(v)
    return s if len(s) <= 120 else s[:119] + "…"
