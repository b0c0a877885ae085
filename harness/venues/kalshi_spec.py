"""AsyncAPI (2.x or 3.x) message schemas: load, resolve, validate frames, diff field sets.

Written for Kalshi's ``asyncapi.yaml`` but generic: nothing here knows Kalshi field names.

Loading
    ``load_spec(path_or_text)`` reads YAML with a ``yaml.SafeLoader`` subclass (never the full
    loader; the subclass only stops YAML 1.1 turning ``yes:``/``no:`` keys into booleans),
    inlines local ``$ref`` (``#/components/...``; external refs are a ``SpecError``) and maps
    every ``components.messages`` entry to the value of its payload's ``type`` (``const`` or
    ``enum``). Client commands (payloads keyed by ``cmd``) are mapped as ``cmd:<name>``.
    Several schemas may share one type (``ok`` is both the update and the list reply); a frame
    is validated against each and the one with the fewest findings wins.

Validating
    ``Spec.validate(frame, errata=None) -> ValidationResult``: findings with a dotted
    ``path`` (``msg.market_tickers[0]``), a ``kind`` (``missing_required``, ``wrong_type``,
    ``pattern``, ``format``, ``enum``, ``const``, ``range``, ``extra_field``,
    ``unknown_type``, ``invalid_json``, ``other``) and a message. ``extra_field`` marks a field
    the frame has but the schema does not declare (not an error in JSON Schema, but exactly
    the drift we want to see). Findings explained by an erratum go to
    ``ValidationResult.errata`` with the erratum's reason instead of ``findings``.

Errata file format (TOML, or JSON with the same structure)
    Three tables of arrays; every entry needs ``reason``. ``types`` (list of globs over the
    message type, default ``["*"]``) restricts an entry to some messages. ``field`` is a glob
    (``fnmatch``) over the finding path with array indices written ``[]``
    (``msg.market_tickers[]``)::

        [[pattern_override]]        # a pattern finding is an erratum when the value
        field = "*market_ticker*"   # matches this corrected regex instead
        pattern = '^[A-Z0-9.-]+$'
        reason = "..."

        [[not_required]]            # a missing_required finding for this field is an erratum
        types = ["ticker"]
        field = "msg.dollar_volume"
        reason = "..."

        [[ignore]]                  # any finding of this kind at this field is an erratum
        kind = "const"
        types = ["multivariate_market_lifecycle"]
        field = "type"
        reason = "..."

    ``load_errata(path)`` reads it (``.json`` by suffix, TOML otherwise);
    ``default_kalshi_errata()`` returns the shipped ``kalshi_errata.toml``.

Diffing
    ``spec_field_map(spec) -> {type: {field_path: {json types}}}`` flattens every message
    schema to dotted paths (``msg.yes_dollars_fp[][]``) with JSON type names (``string``,
    ``integer``, ``number``, ``boolean``, ``object``, ``array``, ``null``; ``nullable`` and
    ``oneOf``/``anyOf`` unions included). ``diff_field_maps(a, b)`` compares two such maps;
    it takes maps observed in recordings too (``observed_field_map(frames)``), so spec vs
    spec, spec vs recording and recording vs recording use one comparison.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from harness.errors import SpecError

__all__ = [
    "Spec",
    "SpecFinding",
    "ValidationResult",
    "Errata",
    "FieldDiff",
    "TypeDiff",
    "load_spec",
    "load_errata",
    "default_kalshi_errata",
    "spec_field_map",
    "observed_field_map",
    "frame_fields",
    "json_type",
    "diff_field_maps",
    "diff_specs",
    "error_codes",
]

KINDS = (
    "missing_required",
    "wrong_type",
    "pattern",
    "format",
    "enum",
    "const",
    "range",
    "extra_field",
    "unknown_type",
    "invalid_json",
    "other",
)

DEFAULT_ERRATA_PATH = Path(__file__).with_name("kalshi_errata.toml")


# --------------------------------------------------------------------------- loading


def _resolve(doc: Any, node: Any, stack: tuple[str, ...] = ()) -> Any:
    """Return ``node`` with local ``$ref`` inlined (siblings of ``$ref`` override)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/"):
                raise SpecError(
                    f"external $ref {ref!r} is not supported",
                    hint="bundle the spec into one file first",
                )
            if ref in stack:  # recursive schema: stop here, accept anything
                return {}
            target: Any = doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise SpecError(f"unresolvable $ref {ref!r}")
                target = target[part]
            out = _resolve(doc, target, stack + (ref,))
            if isinstance(out, dict):
                out = dict(out)
                for k, v in node.items():
                    if k != "$ref":
                        out[k] = _resolve(doc, v, stack)
            return out
        return {k: _resolve(doc, v, stack) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(doc, v, stack) for v in node]
    return node


def _discriminators(schema: Any, key: str) -> list[str]:
    """Values of ``properties.<key>`` (const/enum) in a payload schema; allOf: the last wins."""
    if not isinstance(schema, dict):
        return []
    found: list[str] = []
    props = schema.get("properties")
    if isinstance(props, dict) and isinstance(props.get(key), dict):
        p = props[key]
        if isinstance(p.get("const"), str):
            found = [p["const"]]
        elif isinstance(p.get("enum"), list):
            found = [v for v in p["enum"] if isinstance(v, str)]
    for part in schema.get("allOf") or ():
        sub = _discriminators(part, key)
        if sub:
            found = sub
    return found


@dataclass
class MessageSchema:
    name: str  # components.messages key
    type: str  # discriminator value ("ticker", "cmd:subscribe")
    schema: dict  # resolved payload schema


class Spec:
    """A loaded AsyncAPI document. ``messages``: type -> list[MessageSchema]."""

    def __init__(self, doc: dict, source: str = "<text>"):
        if not isinstance(doc, dict) or not isinstance(doc.get("components"), dict):
            raise SpecError(f"{source}: not an AsyncAPI document (no components)")
        self.doc = doc
        self.source = source
        self.version = str(doc.get("asyncapi", ""))
        self.messages: dict[str, list[MessageSchema]] = {}
        msgs = doc["components"].get("messages") or {}
        if not isinstance(msgs, dict):
            raise SpecError(f"{source}: components.messages is not a mapping")
        for name, m in msgs.items():
            if not isinstance(m, dict):
                continue
            payload = _resolve(doc, m.get("payload"))
            if not isinstance(payload, dict):
                continue
            types = _discriminators(payload, "type")
            if not types:
                types = ["cmd:" + c for c in _discriminators(payload, "cmd")]
            for t in types:
                self.messages.setdefault(t, []).append(MessageSchema(name, t, payload))
        self._validators: dict[int, Any] = {}

    @property
    def types(self) -> list[str]:
        return sorted(self.messages)

    def extension(self, key: str) -> Any:
        """A top-level ``x-...`` extension (``x-error-codes``), or None."""
        return self.doc.get(key)

    # ------------------------------------------------------------------ validation

    def _validator(self, ms: MessageSchema):
        v = self._validators.get(id(ms))
        if v is None:
            import jsonschema

            cls = jsonschema.validators.validator_for(ms.schema, default=jsonschema.Draft7Validator)
            v = cls(ms.schema, format_checker=jsonschema.FormatChecker())
            self._validators[id(ms)] = v
        return v

    def validate(self, frame: Any, errata: Errata | None = None, type_: str | None = None) -> ValidationResult:
        """Validate one frame (raw text/bytes or parsed object). Never raises for bad frames."""
        obj = frame
        if isinstance(frame, (str, bytes, bytearray, memoryview)):
            try:
                obj = orjson.loads(frame)
            except orjson.JSONDecodeError as e:
                return ValidationResult(type_, None, [SpecFinding("", "invalid_json", f"not JSON: {e}")], [])
        t = type_
        if t is None and isinstance(obj, dict):
            if isinstance(obj.get("type"), str):
                t = obj["type"]
            elif isinstance(obj.get("cmd"), str):
                t = "cmd:" + obj["cmd"]
        candidates = self.messages.get(t or "", [])
        if not candidates:
            what = f"type {t!r}" if t else "a frame without a type"
            return ValidationResult(t, None, [SpecFinding("type", "unknown_type", f"{what} is not in the spec")], [])
        best: ValidationResult | None = None
        for ms in candidates:
            raw = self._check(ms, obj)
            res = ValidationResult(t, ms.name, [], [])
            for f in raw:
                reason = errata.explain(t, f) if errata is not None else None
                if reason is None:
                    res.findings.append(f)
                else:
                    f.erratum = reason
                    res.errata.append(f)
            if best is None or res._score() < best._score():
                best = res
        assert best is not None
        return best

    def _check(self, ms: MessageSchema, obj: Any) -> list[SpecFinding]:
        out: list[SpecFinding] = []
        for err in self._validator(ms).iter_errors(obj):
            out.extend(_findings_from_error(err))
        out.extend(_extra_fields(ms.schema, obj, ""))
        # deterministic order, no duplicates
        seen = set()
        uniq = []
        for f in sorted(out, key=lambda f: (f.path, f.kind, f.message)):
            k = (f.path, f.kind, f.message)
            if k not in seen:
                seen.add(k)
                uniq.append(f)
        return uniq


@dataclass
class SpecFinding:
    path: str
    kind: str
    message: str
    value: Any = None
    erratum: str | None = None  # the errata reason, when an erratum explains it

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ValidationResult:
    type: str | None
    message_name: str | None  # components.messages key matched
    findings: list[SpecFinding]
    errata: list[SpecFinding]  # findings explained by known spec bugs

    @property
    def ok(self) -> bool:
        return not [f for f in self.findings if f.kind != "extra_field"]

    def kinds(self) -> set[str]:
        return {f.kind for f in self.findings}

    def _score(self) -> tuple[int, int, int]:
        # structural mismatches weigh more than value constraints when picking a schema
        hard = sum(_WEIGHT.get(f.kind, 1) for f in self.findings if f.kind != "extra_field")
        extra = sum(1 for f in self.findings if f.kind == "extra_field")
        return (hard, extra, len(self.errata))

    def to_dict(self) -> dict:
        return {
            "type": self.type,
            "message": self.message_name,
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
            "errata": [f.to_dict() for f in self.errata],
        }


_WEIGHT = {"wrong_type": 3, "missing_required": 3, "const": 3, "unknown_type": 3}


def _fmt_path(parts: Iterable[Any]) -> str:
    s = ""
    for p in parts:
        if isinstance(p, int):
            s += f"[{p}]"
        else:
            s += ("." if s else "") + str(p)
    return s


_KIND = {
    "type": "wrong_type",
    "pattern": "pattern",
    "format": "format",
    "enum": "enum",
    "const": "const",
    "minimum": "range",
    "maximum": "range",
    "exclusiveMinimum": "range",
    "exclusiveMaximum": "range",
    "minItems": "range",
    "maxItems": "range",
    "minLength": "range",
    "maxLength": "range",
}


def _findings_from_error(err) -> list[SpecFinding]:
    path = _fmt_path(err.absolute_path)
    if err.validator == "required":
        inst = err.instance if isinstance(err.instance, dict) else {}
        missing = [r for r in err.validator_value if r not in inst]
        return [
            SpecFinding(_fmt_path([*err.absolute_path, m]), "missing_required", f"required field {m!r} is missing")
            for m in missing
        ]
    if err.validator in ("allOf", "anyOf", "oneOf") and err.context:
        # report the sub-errors (the most specific ones)
        out: list[SpecFinding] = []
        for sub in err.context:
            out.extend(_findings_from_error(sub))
        return out
    kind = _KIND.get(err.validator, "other")
    value = err.instance if isinstance(err.instance, (str, int, float, bool)) or err.instance is None else None
    return [SpecFinding(path, kind, err.message, value)]


def _schema_parts(schema: dict) -> list[dict]:
    parts = [schema]
    for p in schema.get("allOf") or ():
        if isinstance(p, dict):
            parts.extend(_schema_parts(p))
    return parts


def _extra_fields(schema: Any, inst: Any, path: str) -> list[SpecFinding]:
    """Fields present in ``inst`` that no ``properties`` of ``schema`` declare."""
    if not isinstance(schema, dict):
        return []
    out: list[SpecFinding] = []
    if isinstance(inst, dict):
        props: dict = {}
        open_ended = False
        alts = []
        for part in _schema_parts(schema):
            if isinstance(part.get("properties"), dict):
                props.update(part["properties"])
            if part.get("patternProperties") or isinstance(part.get("additionalProperties"), dict):
                open_ended = True
            alts.extend(a for a in (part.get("oneOf") or []) + (part.get("anyOf") or []) if isinstance(a, dict))
        has_props = bool(props)
        for k, v in inst.items():
            sub = f"{path}.{k}" if path else k
            if k in props:
                out.extend(_extra_fields(props[k], v, sub))
            elif has_props and not open_ended and not alts:
                out.append(SpecFinding(sub, "extra_field", f"field {k!r} is not declared in the schema", None))
    elif isinstance(inst, list):
        items = None
        for part in _schema_parts(schema):
            if isinstance(part.get("items"), dict):
                items = part["items"]
        if items is not None:
            for i, v in enumerate(inst):
                out.extend(_extra_fields(items, v, f"{path}[{i}]"))
    return out


# --------------------------------------------------------------------------- errata


@dataclass
class Erratum:
    section: str  # pattern_override | not_required | ignore
    field: str
    reason: str
    types: tuple[str, ...] = ("*",)
    pattern: str | None = None
    kind: str | None = None

    def applies(self, type_: str | None, path: str) -> bool:
        norm = re.sub(r"\[\d+\]", "[]", path)
        if not fnmatch.fnmatchcase(norm, self.field):
            return False
        return any(fnmatch.fnmatchcase(type_ or "", t) for t in self.types)


@dataclass
class Errata:
    entries: list[Erratum] = field(default_factory=list)
    source: str = "<none>"

    def explain(self, type_: str | None, f: SpecFinding) -> str | None:
        for e in self.entries:
            if not e.applies(type_, f.path):
                continue
            if e.section == "pattern_override" and f.kind == "pattern":
                if e.pattern is None or (isinstance(f.value, str) and re.search(e.pattern, f.value)):
                    return e.reason
            elif e.section == "not_required" and f.kind == "missing_required":
                return e.reason
            elif e.section == "ignore" and (e.kind is None or e.kind == f.kind):
                return e.reason
        return None


def errata_from_mapping(data: Mapping, source: str = "<mapping>") -> Errata:
    entries: list[Erratum] = []
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}: errata must be a table/object")
    for section in ("pattern_override", "not_required", "ignore"):
        items = data.get(section, [])
        if not isinstance(items, list):
            raise SpecError(f"{source}: [{section}] must be an array of tables ([[{section}]])")
        for i, it in enumerate(items):
            where = f"{source}: {section}[{i}]"
            if not isinstance(it, Mapping):
                raise SpecError(f"{where} is not a table")
            fld, reason = it.get("field"), it.get("reason")
            if not isinstance(fld, str) or not fld:
                raise SpecError(f"{where}: 'field' (a glob over the finding path) is required")
            if not isinstance(reason, str) or not reason.strip():
                raise SpecError(f"{where}: 'reason' is required: say why this is a spec bug")
            types = it.get("types", ["*"])
            if isinstance(types, str):
                types = [types]
            if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
                raise SpecError(f"{where}: 'types' must be a list of strings")
            pat = it.get("pattern")
            if pat is not None:
                try:
                    re.compile(pat)
                except (re.error, TypeError) as e:
                    raise SpecError(f"{where}: bad pattern {pat!r}: {e}") from None
            kind = it.get("kind")
            if kind is not None and kind not in KINDS:
                raise SpecError(f"{where}: unknown kind {kind!r}", hint=f"one of {', '.join(KINDS)}")
            entries.append(Erratum(section, fld, reason.strip(), tuple(types), pat, kind))
    unknown = set(data) - {"pattern_override", "not_required", "ignore"}
    if unknown:
        raise SpecError(f"{source}: unknown errata sections {sorted(unknown)}")
    return Errata(entries, source)


def load_errata(path: str | Path) -> Errata:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise SpecError(f"cannot read errata file {p}: {e.strerror or e}") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise SpecError(f"errata file {p} is not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {e}") from None
    return errata_from_mapping(data, str(p))


def default_kalshi_errata() -> Errata:
    return load_errata(DEFAULT_ERRATA_PATH)


class _SpecLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` minus YAML 1.1's ``yes``/``no``/``on``/``off`` booleans.

    Plain ``yaml.safe_load`` turns the property names ``yes:`` and ``no:`` (Kalshi's
    cents-era ``orderbook_snapshot`` fields) into ``True``/``False`` keys; JSON Schema
    property names are strings, so only ``true``/``false`` stay booleans here.
    """


_SpecLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_spec(source: str | Path | bytes) -> Spec:
    """Load an AsyncAPI YAML/JSON document from a path (or the text itself, if it has newlines)."""
    if isinstance(source, bytes) or (isinstance(source, str) and "\n" in source):
        text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
        name = "<text>"
    else:
        p = Path(source)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise SpecError(f"cannot read spec {p}: {e.strerror or e}") from None
        except UnicodeDecodeError as e:
            raise SpecError(f"spec {p} is not UTF-8 text: {e}") from None
        name = str(p)
    try:
        doc = yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise SpecError(f"{name}: not valid YAML: {e}") from None
    return Spec(doc, name)


def error_codes(spec: Spec) -> dict[int, tuple[str, str]]:
    """``x-error-codes`` as {code: (name, description)}."""
    x = spec.extension("x-error-codes") or {}
    out: dict[int, tuple[str, str]] = {}
    for c in (x.get("codes") if isinstance(x, dict) else None) or []:
        if isinstance(c, dict) and isinstance(c.get("code"), int):
            out[c["code"]] = (str(c.get("name", "")), str(c.get("description", "")))
    return out


# --------------------------------------------------------------------------- field maps and diff

FieldMap = dict[str, dict[str, set[str]]]  # type -> field path -> JSON types


def _schema_types(s: dict) -> set[str]:
    t = s.get("type")
    out: set[str] = set()
    if isinstance(t, str):
        out.add(t)
    elif isinstance(t, list):
        out.update(x for x in t if isinstance(x, str))
    if s.get("nullable") is True:
        out.add("null")
    for key in ("oneOf", "anyOf"):
        for alt in s.get(key) or ():
            if isinstance(alt, dict):
                out |= _schema_types(alt)
    for part in s.get("allOf") or ():
        if isinstance(part, dict):
            out |= _schema_types(part)
    if not out:
        if "const" in s:
            out.add(json_type(s["const"]))
        elif isinstance(s.get("enum"), list):
            out.update(json_type(v) for v in s["enum"])
        elif isinstance(s.get("properties"), dict):
            out.add("object")
        elif "items" in s:
            out.add("array")
    return out


def _variants(s: dict, depth: int = 0) -> list[dict]:
    out = [s]
    if depth < 8:
        for k in ("allOf", "oneOf", "anyOf"):
            for p in s.get(k) or ():
                if isinstance(p, dict):
                    out.extend(_variants(p, depth + 1))
    return out


def _walk_schema(s: Any, path: str, out: dict[str, set[str]]) -> None:
    if not isinstance(s, dict):
        return
    if path:
        out.setdefault(path, set()).update(_schema_types(s))
    for v in _variants(s):
        props = v.get("properties")
        if isinstance(props, dict):
            for k, sub in props.items():
                _walk_schema(sub, f"{path}.{k}" if path else k, out)
        items = v.get("items")
        if isinstance(items, dict):
            _walk_schema(items, f"{path}[]", out)


def spec_field_map(spec: Spec) -> FieldMap:
    out: FieldMap = {}
    for t, schemas in spec.messages.items():
        fields: dict[str, set[str]] = {}
        for ms in schemas:
            _walk_schema(ms.schema, "", fields)
        out[t] = fields
    return out


def json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _walk_value(v: Any, path: str, out: dict[str, set[str]]) -> None:
    if path:
        out.setdefault(path, set()).add(json_type(v))
    if isinstance(v, dict):
        for k, sub in v.items():
            _walk_value(sub, f"{path}.{k}" if path else k, out)
    elif isinstance(v, list):
        for sub in v:
            _walk_value(sub, f"{path}[]", out)


def frame_fields(obj: Any, into: dict[str, set[str]]) -> dict[str, set[str]]:
    """Add the field paths of one parsed frame (any venue's JSON) and their JSON types to
    ``into`` ({path: {types}}, the per-type part of a ``FieldMap``)."""
    _walk_value(obj, "", into)
    return into


def observed_field_map(frames: Iterable[Any], into: FieldMap | None = None) -> FieldMap:
    """Field map of frames (text or parsed); frames that are not JSON objects are skipped."""
    out: FieldMap = into if into is not None else {}
    for fr in frames:
        obj = fr
        if isinstance(fr, (str, bytes, bytearray)):
            try:
                obj = orjson.loads(fr)
            except orjson.JSONDecodeError:
                continue
        if not isinstance(obj, dict):
            continue
        t = obj.get("type") if isinstance(obj.get("type"), str) else None
        if t is None and isinstance(obj.get("cmd"), str):
            t = "cmd:" + obj["cmd"]
        if t is None:
            continue
        _walk_value(obj, "", out.setdefault(t, {}))
    return out


@dataclass
class TypeDiff:
    type: str
    status: str  # "added" | "removed" | "changed" | "same"
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed_type: list[tuple[str, list[str], list[str]]] = field(default_factory=list)
    newly_nullable: list[str] = field(default_factory=list)
    no_longer_nullable: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.status != "same"


@dataclass
class FieldDiff:
    a: str
    b: str
    types: dict[str, TypeDiff]

    def changed(self) -> dict[str, TypeDiff]:
        return {t: d for t, d in self.types.items() if d.changed}

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "types": {
                t: {
                    "status": d.status,
                    "added": d.added,
                    "removed": d.removed,
                    "changed_type": [{"field": p, "a": x, "b": y} for p, x, y in d.changed_type],
                    "newly_nullable": d.newly_nullable,
                    "no_longer_nullable": d.no_longer_nullable,
                }
                for t, d in sorted(self.types.items())
            },
        }


def diff_field_maps(a: FieldMap, b: FieldMap, a_name: str = "a", b_name: str = "b") -> FieldDiff:
    """Per type: fields added in ``b``, removed from ``a``, JSON type changes, nullability."""
    out: dict[str, TypeDiff] = {}
    for t in sorted(set(a) | set(b)):
        fa, fb = a.get(t), b.get(t)
        if fa is None:
            out[t] = TypeDiff(t, "added", added=sorted(fb or {}))
            continue
        if fb is None:
            out[t] = TypeDiff(t, "removed", removed=sorted(fa))
            continue
        d = TypeDiff(t, "same")
        d.added = sorted(set(fb) - set(fa))
        d.removed = sorted(set(fa) - set(fb))
        for p in sorted(set(fa) & set(fb)):
            ta, tb = fa[p] - {"null"}, fb[p] - {"null"}
            if ta != tb and ta and tb:
                d.changed_type.append((p, sorted(ta), sorted(tb)))
            if "null" in fb[p] and "null" not in fa[p]:
                d.newly_nullable.append(p)
            if "null" in fa[p] and "null" not in fb[p]:
                d.no_longer_nullable.append(p)
        if d.added or d.removed or d.changed_type or d.newly_nullable or d.no_longer_nullable:
            d.status = "changed"
        out[t] = d
    return FieldDiff(a_name, b_name, out)


def diff_specs(a: Spec | str | Path, b: Spec | str | Path) -> FieldDiff:
    sa = a if isinstance(a, Spec) else load_spec(a)
    sb = b if isinstance(b, Spec) else load_spec(b)
    return diff_field_maps(spec_field_map(sa), spec_field_map(sb), sa.source, sb.source)
