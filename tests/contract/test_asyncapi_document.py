"""The published AsyncAPI document validates against the official AsyncAPI 3.0.0 JSON Schema.

The schema file is `schemas/3.0.0-without-$id.json` of the Apache-2.0 `@asyncapi/specs` package
(version 6.11.1), kept here because tests must not reach the network.
"""

import json
from pathlib import Path

import jsonschema

from shared.contracts import asyncapi

HERE = Path(__file__).parent
DOCUMENT = Path(__file__).parents[2] / "deploy" / "docs" / "asyncapi.json"


def test_published_asyncapi_document_is_valid_asyncapi_3() -> None:
    schema = json.loads((HERE / "asyncapi-3.0.0.schema.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    document = json.loads(DOCUMENT.read_text())
    errors = [f"{list(e.path)}: {e.message[:200]}" for e in validator.iter_errors(document)]
    assert errors == []
    assert document == json.loads(json.dumps(asyncapi.build()))  # and it is what the code says
