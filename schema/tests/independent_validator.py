"""Independent check of rix's schema files with Python's `jsonschema` package.

Usage: independent_validator.py SCHEMA_DIR CASES_JSONL

Checks every schema file against the draft 2020-12 meta-schema, then validates each case line
({"schema": "achievement", "document": {...}, "valid": true}) and reports every disagreement.
Run by schema/tests/independent_validator.rs; the venv comes from ops/install-deps.sh.
"""
import json
import pathlib
import sys

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource


def main() -> int:
    schema_dir = pathlib.Path(sys.argv[1])
    schemas = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in schema_dir.glob("*.json")}
    for name, schema in schemas.items():
        Draft202012Validator.check_schema(schema)
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values()
    )
    validators = {
        name: Draft202012Validator(schema, registry=registry, format_checker=FormatChecker())
        for name, schema in schemas.items()
    }
    disagreements = []
    checked = 0
    with open(sys.argv[2], encoding="utf-8") as cases:
        for number, line in enumerate(cases, 1):
            case = json.loads(line)
            errors = list(validators[case["schema"]].iter_errors(case["document"]))
            if bool(errors) == case["valid"]:
                disagreements.append(
                    f"line {number} ({case['schema']}): expected valid={case['valid']}, python says "
                    + ("; ".join(f"{e.json_path}: {e.message[:120]}" for e in errors) or "valid")
                )
            checked += 1
    print(json.dumps({"schemas": sorted(schemas), "checked": checked, "disagreements": len(disagreements)}))
    for d in disagreements[:20]:
        print(d, file=sys.stderr)
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
