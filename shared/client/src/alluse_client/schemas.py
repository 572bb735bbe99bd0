"""The JSON Schema of each type, shipped with the package (or loaded from a folder).

    schemas = SchemaSet.bundled()                       # the lifecycle types
    schemas.validate("alluse.account.created", data)   # SchemaError says what is wrong
    SchemaSet.bundled("upstream")                       # WS2/WS4 payloads an engine sends
    SchemaSet.bundled("outcomes")                       # alluse.entry.applied/duplicate/refused

Needs `jsonschema` (`pip install 'alluse-client[schemas]'`). The bundled copies are the
platform's `shared/contracts/schemas/<kind>/*.json`; a test keeps them equal.
"""

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any


class SchemaError(ValueError):
    """The entry's data does not match the JSON Schema of its type."""


class SchemaSet:
    def __init__(self, schemas: Mapping[str, Mapping[str, Any]]) -> None:
        try:
            from jsonschema import Draft202012Validator
        except ImportError:  # an optional dependency: say how to get it
            raise ImportError(
                "validating entries needs jsonschema: pip install 'alluse-client[schemas]'"
            ) from None
        self.schemas = dict(schemas)
        self._validators = {t: Draft202012Validator(s) for t, s in self.schemas.items()}

    @classmethod
    def bundled(cls, kind: str = "lifecycle") -> "SchemaSet":
        """The schemas of `kind` (lifecycle, upstream or outcomes) of the platform version
        this package was built with."""
        folder = resources.files("alluse_client") / "schemas" / kind
        found = {
            f.name.removesuffix(".json"): json.loads(f.read_text(encoding="utf-8"))
            for f in folder.iterdir()
            if f.name.endswith(".json")
        }
        return cls(found)

    @classmethod
    def from_dir(cls, path: str | Path) -> "SchemaSet":
        """Schemas named `<type>.json` in a folder (e.g. a newer platform's)."""
        files = sorted(Path(path).glob("*.json"))
        return cls({f.stem: json.loads(f.read_text(encoding="utf-8")) for f in files})

    def known(self, type_: str) -> bool:
        return type_ in self._validators

    def uri(self, type_: str) -> str | None:
        """The schema's `$id`, which the entry's `dataschema` names."""
        schema = self.schemas.get(type_)
        return None if schema is None else schema.get("$id")

    def validate(self, type_: str, data: Any) -> None:
        validator = self._validators.get(type_)
        if validator is None:
            raise SchemaError(f"no schema for type {type_!r}")
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            raise SchemaError(
                "; ".join(
                    f"{'.'.join(map(str, e.absolute_path)) or 'data'}: {e.message}"
                    for e in errors[:5]
                )
            )
