"""Writes docs/api.md, the Markdown API reference, from the OpenAPI document the app serves."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "api.md"
COMMAND = "python scripts/api_reference.py"
MAX_DEPTH = 6

if TYPE_CHECKING:
    from core.routing import Route

# Finer auth wording than the OpenAPI `security` block can carry (it only says bearer / optional / none).
_AUTH_DETAIL = {
    "user": "a user's API key (`thk_…`) or wallet session (`ths_…`); the admin token is refused (403 E9007)",
    "any": "a user's API key (`thk_…`) or wallet session (`ths_…`), or the admin token",
    "admin": "the admin token (`ADMIN_TOKEN`)",
    "optional": "a user's API key (`thk_…`) or wallet session (`ths_…`); anonymous calls are allowed",
}
# How a rate-limit key reads, by the group's key kind and the route's auth (admin and anonymous callers have no user).
_BY_KEY = {
    ("ip", ""): "per client IP",
    ("user", "user"): "per user",
    ("user", "any"): "per user (per client IP for the admin token)",
    ("user", ""): "per user (per client IP when anonymous)",
}


def _ensure_src_on_path() -> None:
    src = str(ROOT / "src")
    if src not in sys.path:
        sys.path.insert(0, src)


def load() -> tuple[dict[str, Any], list[Route]]:
    """The OpenAPI document exactly as `GET /openapi.json` serves it, and the route table it was built from."""
    _ensure_src_on_path()
    from api.routes import ROUTES, _openapi_body

    return json.loads(_openapi_body()), list(ROUTES)


# ---- text helpers


def _text(value: object) -> str:
    """Free text for a table cell: one line, pipes and angle brackets escaped."""
    text = " ".join(str(value).split())
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _code(value: object) -> str:
    """Inline code for a table cell (pipes still need escaping inside a GFM table)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "`" + " ".join(text.split()).replace("|", "\\|") + "`"


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


# ---- schema → field rows


@dataclass
class TypeInfo:
    """How one schema reads in a table, and the object schema whose fields go below it, if any."""

    text: str
    nested: dict[str, Any] | None = None
    suffix: str = ""
    notes: list[str] = field(default_factory=list)


def _constraints(schema: dict[str, Any]) -> list[str]:
    notes = []
    if "minLength" in schema and "maxLength" in schema:
        notes.append(f"{schema['minLength']} to {schema['maxLength']} characters")
    elif "maxLength" in schema:
        notes.append(f"at most {schema['maxLength']} characters")
    elif "minLength" in schema:
        notes.append(f"at least {schema['minLength']} characters")
    if "maxItems" in schema:
        notes.append(f"at most {schema['maxItems']} items")
    if "minimum" in schema:
        notes.append(f"≥ {schema['minimum']}")
    if "maximum" in schema:
        notes.append(f"≤ {schema['maximum']}")
    if "pattern" in schema:
        notes.append(f"pattern {_code(schema['pattern'])}")
    return notes


def type_info(schema: dict[str, Any], components: dict[str, Any]) -> TypeInfo:
    """Resolves $refs and nullable unions; objects, arrays of objects and maps of objects expose their fields."""
    if "anyOf" in schema:
        variants = [item for item in schema["anyOf"] if item.get("type") != "null"]
        nullable = len(variants) < len(schema["anyOf"])
        if len(variants) == 1:
            info = type_info(variants[0], components)
        else:
            parts = [type_info(item, components) for item in variants]
            info = TypeInfo(" or ".join(part.text for part in parts), notes=[n for p in parts for n in p.notes])
        if nullable:
            info.text += " or null"
        return info
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return TypeInfo(f"object ({name})", components[name])
    if "const" in schema:
        return TypeInfo(f"always {_code(schema['const'])}")
    if "enum" in schema:
        return TypeInfo(" \\| ".join(_code(value) for value in schema["enum"]))
    kind = schema.get("type")
    if kind == "array":
        items = type_info(schema.get("items", {}), components)
        text = f"({items.text})" if " or " in items.text or "\\|" in items.text else items.text
        info = TypeInfo(f"array of {text}", items.nested, "[]" + items.suffix if items.nested else "")
        info.notes = items.notes + _constraints(schema)
        return info
    if kind == "object":
        if schema.get("properties"):
            return TypeInfo("object", schema)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            values = type_info(extra, components)
            suffix = ".<key>" + values.suffix if values.nested else ""
            return TypeInfo(f"map of {values.text}", values.nested, suffix, values.notes)
        return TypeInfo("object")
    return TypeInfo(str(kind or "any"), notes=_constraints(schema))


@dataclass(frozen=True)
class Row:
    name: str
    type: str
    required: bool
    description: str


def field_rows(
    schema: dict[str, Any], components: dict[str, Any], prefix: str = "", depth: int = 0, seen: tuple[int, ...] = ()
) -> Iterator[Row]:
    """One row per field, nested objects flattened to dotted names (`a.b`, `list[].c`, `map.<key>.d`)."""
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        info = type_info(prop, components)
        notes = [*info.notes]
        if prop.get("default") is not None:
            notes.append(f"default {_code(prop['default'])}")
        for example in prop.get("examples", [])[:1]:
            notes.append(f"example {_code(example)}")
        parts = [_text(prop["description"])] if prop.get("description") else []
        parts += notes
        yield Row(prefix + name, info.text, name in required, "; ".join(parts))
        nested = info.nested
        if nested is not None and depth < MAX_DEPTH and id(nested) not in seen:
            yield from field_rows(nested, components, f"{prefix}{name}{info.suffix}.", depth + 1, (*seen, id(nested)))


def _fields_table(schema: dict[str, Any], components: dict[str, Any], *, request: bool) -> list[str]:
    rows = list(field_rows(schema, components))
    if not rows:
        return []
    second = "required" if request else "always present"
    lines = [f"| field | type | {second} | description |", "|---|---|---|---|"]
    lines += [
        f"| {_code(row.name)} | {row.type} | {'yes' if row.required else 'no'} | {row.description} |" for row in rows
    ]
    return lines


# ---- operations


@dataclass
class Operation:
    method: str
    path: str
    spec: dict[str, Any]
    route: Route | None

    @property
    def anchor(self) -> str:
        return str(self.spec["operationId"])

    @property
    def title(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def tag(self) -> str:
        return str((self.spec.get("tags") or ["general"])[0])


def operations(document: dict[str, Any], routes: Sequence[Route]) -> list[Operation]:
    by_key = {(route.method, route.path): route for route in routes}
    return [
        Operation(method.upper(), path, spec, by_key.get((method.upper(), path)))
        for path, methods in document["paths"].items()
        for method, spec in methods.items()
    ]


def _auth(op: Operation) -> str:
    security = op.spec.get("security")
    kind = op.route.auth if op.route else None
    if not security:
        return "none (public)"
    optional = {} in security
    detail = _AUTH_DETAIL.get(kind or "", "")
    if optional:
        return f"optional bearer: {detail}" if detail else "optional bearer"
    return f"bearer: {detail}" if detail else "bearer"


def _flag(op: Operation) -> str:
    disabled = op.spec["responses"].get("503", {}).get("description", "")
    if "E9010" not in disabled:
        return "none (always on)"
    name = op.route.flag if op.route and op.route.flag else "a feature flag"
    return f"{_code(name)}; when off for the caller: 503 E9010"


def _rate_limit(op: Operation) -> str:
    if "429" not in op.spec["responses"]:
        return "none"
    group = op.route.rate_limit if op.route else None
    if not group:
        return "yes (429 E9003)"
    from core.ratelimit import GROUPS, PERIOD_SECONDS

    limit, key = GROUPS[group]
    auth = op.route.auth if op.route and (key, op.route.auth) in _BY_KEY else ""
    return f"{_code(group)}: {limit} per {PERIOD_SECONDS} s {_BY_KEY[(key, auth)]}; over it: 429 E9003"


def _success(op: Operation) -> tuple[str, dict[str, Any] | None]:
    status = next(code for code in op.spec["responses"] if code.startswith("2"))
    schema = op.spec["responses"][status].get("content", {}).get("application/json", {}).get("schema")
    return status, schema


@dataclass
class Renderer:
    document: dict[str, Any]
    ops: list[Operation]
    shown: dict[str, Operation] = field(default_factory=dict)

    @property
    def components(self) -> dict[str, Any]:
        return self.document["components"]["schemas"]

    def _schema_block(self, ref: dict[str, Any], op: Operation, *, request: bool) -> list[str]:
        name = _ref_name(ref["$ref"])
        schema = self.components[name]
        first = self.shown.get(name)
        lines: list[str] = []
        if first is not None and first is not op:
            return [f"Fields as in [`{name}`](#{first.anchor}) ({first.title}).", ""]
        self.shown[name] = op
        if schema.get("description"):
            lines += [_text(schema["description"]), ""]
        table = _fields_table(schema, self.components, request=request)
        if table:
            lines += [*table, ""]
        if request and schema.get("additionalProperties") is False:
            lines += ["Unknown fields are refused (400 E9004).", ""]
        return lines

    def operation(self, op: Operation) -> list[str]:
        spec = op.spec
        status, response = _success(op)
        lines = [f'<a id="{op.anchor}"></a>', "", f"### `{op.title}`", "", _text(spec.get("summary", "")), ""]
        lines += [
            "| | |",
            "|---|---|",
            f"| auth | {_auth(op)} |",
            f"| flag | {_flag(op)} |",
            f"| rate limit | {_rate_limit(op)} |",
            f"| success | `{status}` |",
            "",
        ]
        for where in ("path", "query"):
            params = [p for p in spec.get("parameters", []) if p["in"] == where]
            if params:
                lines += [f"**{where.title()} parameters**", "", "| name | required | description |", "|---|---|---|"]
                lines += [
                    f"| {_code(p['name'])} | {'yes' if p.get('required') else 'no'} | {_text(p.get('description', ''))} |"
                    for p in params
                ]
                lines.append("")
        body = spec.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body is not None and not self.components[_ref_name(body["$ref"])].get("properties"):
            lines += ["**Request body**: none; send nothing or `{}` (any field is refused with 400 E9004).", ""]
        elif body is not None:
            optional = "" if spec["requestBody"].get("required", True) else ", optional: an empty body reads as `{}`"
            lines += [f"**Request body** `{_ref_name(body['$ref'])}` (JSON{optional})", ""]
            lines += self._schema_block(body, op, request=True)
        if response is not None:
            lines += [f"**Response `{status}`** `{_ref_name(response['$ref'])}`", ""]
            lines += self._schema_block(response, op, request=False)
        elif status == "204":
            lines += [f"**Response `{status}`**: no body.", ""]
        else:
            lines += [f"**Response `{status}`**: no JSON schema in the OpenAPI document (see the summary).", ""]
        errors = [(code, r["description"]) for code, r in spec["responses"].items() if not code.startswith("2")]
        if errors:
            lines += ["**Errors**", "", "| status | codes |", "|---|---|"]
            lines += [f"| `{code}` | {'; '.join(_text(part) for part in text.split(' · '))} |" for code, text in errors]
            lines.append("")
        return lines

    def render(self) -> str:
        info = self.document["info"]
        scheme = self.document["components"]["securitySchemes"]["bearer"]
        error_fields = _fields_table(self.components["ErrorBody"], self.components, request=False)
        tags = list(dict.fromkeys(op.tag for op in self.ops))
        lines = [
            "# API reference",
            "",
            f"<!-- Generated by scripts/api_reference.py from the OpenAPI document; do not edit. Run `{COMMAND}`. -->",
            "",
            f"{info['title']} {info['version']}, OpenAPI {self.document['openapi']}: {len(self.ops)} operations. "
            "This file is generated from the document `GET /openapi.json` serves (that route is not listed in it). "
            f"Regenerate with `{COMMAND}`; `{COMMAND} --check` fails when this file is stale.",
            "",
            "## Conventions",
            "",
            "- Request and response bodies are JSON (`content-type: application/json`), at most 64 KiB.",
            f"- Auth: `Authorization: Bearer <token>`, where the token is an {_text(scheme['description'])}.",
            "- Every response carries `X-Request-ID` (the caller's, when it sent a safe one).",
            "- Amounts and thresholds are decimal strings of base units; timestamps are RFC 3339 UTC with `Z`.",
            '- Every error is `{"error": {...}}` with the HTTP status of its code; validation errors (E9004) list '
            "each bad field in `details.fields` as `{field, message, type}`. The `error` object:",
            "",
            *error_fields,
            "",
            "In the field tables, nested objects are flattened: `a.b` is field `b` of object `a`, `a[].b` is "
            "field `b` of each item of array `a`, `a.<key>.b` is field `b` of each value of map `a`. "
            "*Required* is relative to the enclosing object.",
            "",
            "## Operations",
            "",
        ]
        for tag in tags:
            lines += [f"**{tag}**", "", "| method | path | summary |", "|---|---|---|"]
            lines += [
                f"| {op.method} | [`{op.path}`](#{op.anchor}) | {_text(op.spec.get('summary', ''))} |"
                for op in self.ops
                if op.tag == tag
            ]
            lines.append("")
        for tag in tags:
            lines += [f"## {tag.title()}", ""]
            for op in self.ops:
                if op.tag == tag:
                    lines += self.operation(op)
        return "\n".join(lines).rstrip("\n") + "\n"


def render(document: dict[str, Any], routes: Sequence[Route]) -> str:
    return Renderer(document, operations(document, routes)).render()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is missing or out of date")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write (default docs/api.md)")
    args = parser.parse_args(argv)
    text = render(*load())
    output: Path = args.output
    current = output.read_text(encoding="utf-8") if output.exists() else None
    if args.check:
        if current != text:
            print(f"{output} is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {output}" if current != text else f"{output} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
