"""Client library of the ALL-USE account platform.

- Consumers: `Consumer` reads a platform stream in a consumer group that survives its own
  crash without loss, checks each entry's signature (`KeySet`), validates it against the JSON
  Schema of its type (`SchemaSet`) and de-duplicates by (source, id) (`MemoryStore`,
  `SqliteStore`).
- Engines: `Engine` publishes WS2/WS4 entries as binary-mode CloudEvents with idempotent ids,
  with a token from `ClientCredentials`, and waits for each entry's outcome.
- FastStream: `alluse_client.faststream` (install the `faststream` extra).

The library does not depend on the platform's own code; what it checks is specified in the
platform's docs (contract and signatures).
"""

from alluse_client.consumer import Consumer, Event, Inspector, Invalid, Stats
from alluse_client.dedupe import DedupeStore, MemoryStore, SqliteStore
from alluse_client.engine import Engine, NoOutcome, Outcome, Sent
from alluse_client.keys import KeySet, KeysUnavailable
from alluse_client.schemas import SchemaError, SchemaSet
from alluse_client.signatures import SignatureError
from alluse_client.streams import LIFECYCLE, WS2_EVENTS, WS4_EVENTS, Streams
from alluse_client.tokens import (
    ClientCredentials,
    IssuerUnreachable,
    StaticToken,
    TokenError,
    TokenRefused,
)
from alluse_client.wire import binary_fields, idempotent_id

__version__ = "0.1.0"
__all__ = [
    "LIFECYCLE",
    "WS2_EVENTS",
    "WS4_EVENTS",
    "ClientCredentials",
    "Consumer",
    "DedupeStore",
    "Engine",
    "Event",
    "Inspector",
    "Invalid",
    "IssuerUnreachable",
    "KeySet",
    "KeysUnavailable",
    "MemoryStore",
    "NoOutcome",
    "Outcome",
    "SchemaError",
    "SchemaSet",
    "Sent",
    "SignatureError",
    "SqliteStore",
    "StaticToken",
    "Stats",
    "Streams",
    "TokenError",
    "TokenRefused",
    "binary_fields",
    "idempotent_id",
]
