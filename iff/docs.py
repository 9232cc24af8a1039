"""Reference documentation generated from the code.

* ``docs/config-reference.md``: every config field by dotted path, from the JSON Schema of run
  configs (:func:`iff.config.json_schema`, what ``iff schema`` prints);
* ``docs/markets.md``: every market's declared metadata (settings, parameters with default
  priors, observation quantities), what ``iff markets --markdown`` prints.

Regenerate with ``python -m iff.docs`` (``--check`` exits 1 if the committed files differ); a test
keeps the committed files equal to the generator's output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DOCS_DIR = Path(__file__).resolve().parents[1] / "docs"
HEADER = ("<!-- Generated from the code by `python -m iff.docs`; do not edit by hand. -->\n\n")


def _cell(text: Any) -> str:
    """Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _row(*cells: Any) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


# ---- config reference ---------------------------------------------------------------------------

def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[-1]],
                **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _type_text(node: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        target = defs[name]
        if name.endswith("Prior"):
            return "prior spec"
        if "properties" in target:
            return "section"
        return _type_text({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    if "const" in node:
        return f"`{node['const']}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            parts = [_type_text(n, defs) for n in node[key] if n.get("type") != "null"]
            nullable = any(n.get("type") == "null" for n in node[key])
            text = " or ".join(dict.fromkeys(parts))
            return text + (" (or null)" if nullable else "")
    t = node.get("type")
    if t == "array":
        return "list of " + _type_text(node.get("items", {}), defs)
    if t == "object":
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return "map: name -> " + _type_text(extra, defs)
        if "patternProperties" in node:
            return "map: name -> mapping"
        return "mapping"
    bounds = [f"{sym} {node[k]}" for k, sym in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                 ("maximum", "<="), ("exclusiveMaximum", "<"))
              if k in node]
    return (t or "any") + (f" ({', '.join(bounds)})" if bounds else "")


def _default_text(node: dict[str, Any], required: bool) -> str:
    if required:
        return "required"
    if "default" not in node:
        return ""
    return "`" + json.dumps(node["default"]) + "`"


def _walk(node: dict[str, Any], defs: dict[str, Any], path: str, required: set[str],
          rows: list[tuple[str, str, str, str]], seen: tuple[str, ...]) -> None:
    node = _resolve(node, defs)
    for name, prop in node.get("properties", {}).items():
        sub = f"{path}.{name}" if path else name
        rows.append((sub, _type_text(prop, defs), _default_text(prop, name in required),
                     prop.get("description", "") or _resolve(prop, defs).get("description", "")))
        for child, suffix in _children(prop, defs):
            ref = child.get("$ref", "")
            if ref and ref in seen:
                continue
            target = _resolve(child, defs)
            _walk(target, defs, sub + suffix, set(target.get("required", [])), rows,
                  (*seen, ref))


def _children(prop: dict[str, Any], defs: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Sub-sections of a property: a section, a nullable section, or a map of sections."""
    out = []
    options = prop.get("anyOf", [prop])
    for opt in options:
        if "$ref" in opt and "properties" in _resolve(opt, defs):
            out.append((opt, ""))
        extra = opt.get("additionalProperties")
        if isinstance(extra, dict) and "$ref" in extra and "properties" in _resolve(extra, defs):
            out.append((extra, ".<name>"))
    return out


def config_reference(schema: dict[str, Any] | None = None) -> str:
    """Markdown reference of every config field, by dotted path, from the JSON Schema."""
    if schema is None:
        from iff.config import json_schema

        schema = json_schema()
    defs = schema.get("$defs", {})
    lines = [HEADER + "# Config reference\n",
             "Every field of a run config (YAML), by dotted path, generated from the JSON Schema "
             "that `iff schema` prints. `<name>` stands for a key you choose (a drug, a "
             "scenario, a country). Prior fields take a prior spec: `{between: [lo, hi]}` "
             "(optionally `mass`), `{dist: Family, ...}` or `{fixed: value}`.\n"]
    required = set(schema.get("required", []))
    for name, prop in schema["properties"].items():
        rows: list[tuple[str, str, str, str]] = []
        rows.append((name, _type_text(prop, defs), _default_text(prop, name in required),
                     prop.get("description", "") or _resolve(prop, defs).get("description", "")))
        for child, suffix in _children(prop, defs):
            target = _resolve(child, defs)
            _walk(target, defs, name + suffix, set(target.get("required", [])), rows,
                  (child.get("$ref", ""),))
        lines.append(f"## `{name}`\n")
        lines.append(_row("field", "type", "default", "meaning"))
        lines.append("|---|---|---|---|")
        lines += [_row(f"`{p}`", t, d, m) for p, t, d, m in rows]
        lines.append("")
    return "\n".join(lines)


# ---- market reference ---------------------------------------------------------------------------

def _setting_default(info: Any) -> str:
    if info.is_required():
        return "required"
    default = info.get_default(call_default_factory=True)
    return "" if default is None else str(getattr(default, "value", default))


def market_metadata() -> dict[str, dict[str, Any]]:
    """Each registered market's declared metadata (the content of ``iff markets --json``)."""
    from iff import registry

    data = {}
    for name, cls in registry.markets().items():
        data[name] = {
            "title": cls.title, "typology": str(cls.typology), "iccs": list(cls.iccs),
            "settings": [{"name": f, "default": _setting_default(info),
                          "meaning": info.description or ""}
                         for f, info in cls.Settings.model_fields.items()],
            "parameters": [{"name": p.name, "support": str(p.support), "unit": p.unit,
                            "dims": list(p.dims), "default_prior": cls.default_prior_text(p),
                            "pooled": p.pool, "smoothed": p.smooth,
                            "meaning": p.meaning} for p in cls.parameters],
            "partners": cls.partner_meaning,
            "quantities": [{"code": q.code, "unit": q.unit, "item": q.needs_item,
                            "meaning": q.meaning} for q in cls.quantities],
        }
    return data


def structure_text(parameter: dict[str, Any]) -> str:
    """``pooled, smoothed`` (multi-country runs) or ``-``, from a parameter's metadata."""
    return ", ".join(k for k in ("pooled", "smoothed") if parameter[k]) or "-"


def markets_reference() -> str:
    """Markdown reference of every market, from its declared metadata."""
    lines = [HEADER + "# Market reference\n",
             "Every market plugin installed, from its declared metadata (`iff markets "
             "--markdown`). Settings go under `markets.<market>` in a config, priors under "
             "`markets.<market>.priors`, observations in the observation table with "
             "`market,quantity,unit` as listed.\n"]
    for name, d in market_metadata().items():
        lines.append(f"## `{name}`: {d['title']}\n")
        lines.append(f"Typology `{d['typology']}`; ICCS {', '.join(d['iccs'])}.\n")
        if d["settings"]:
            lines += ["### Settings\n", _row("setting", "default", "meaning"), "|---|---|---|"]
            lines += [_row(f"`{s['name']}`", s["default"], s["meaning"]) for s in d["settings"]]
            lines.append("")
        lines += ["### Parameters\n",
                  _row("parameter", "support", "unit", "dims", "default prior", "structure",
                       "meaning"),
                  "|---|---|---|---|---|---|---|"]
        lines += [_row(f"`{p['name']}`", p["support"], p["unit"], ", ".join(p["dims"]),
                       p["default_prior"], structure_text(p), p["meaning"])
                  for p in d["parameters"]]
        lines.append("")
        if d["partners"]:
            lines += [f"Partners (`markets.{name}.partners`, see README \"Multi-country "
                      f"runs\"): {d['partners']}.\n"]
        lines += ["### Observation quantities\n", _row("quantity", "unit", "item", "meaning"),
                  "|---|---|---|---|"]
        lines += [_row(f"`{q['code']}`", q["unit"], "yes" if q["item"] else "", q["meaning"])
                  for q in d["quantities"]]
        lines.append("")
    return "\n".join(lines)


def generated() -> dict[str, str]:
    """File name -> content of every generated document."""
    return {"config-reference.md": config_reference(), "markets.md": markets_reference()}


def main(argv: list[str] | None = None) -> int:
    """``python -m iff.docs [--check] [DIR]``: write (or check) the generated documents."""
    from iff.atomic import write_atomic

    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    folder = Path(args[0]) if args else DOCS_DIR
    stale = []
    for name, text in generated().items():
        path = folder / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            write_atomic(path, text)
            print(f"written {path}")
    if stale:
        print("out of date (run python -m iff.docs): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
