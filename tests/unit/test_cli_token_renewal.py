"""A run longer than a token's life (simulate-decade) renews the token from its source before
it expires, and stops with a clear message when the source has nothing fresher."""

import base64
import json
import time
from pathlib import Path
from typing import Any, cast

import pytest

from services.cli.client import StreamClient
from services.cli.output import USAGE, CliError
from shared.contracts.streams import Streams


def jwt(seconds_left: float, sub: str = "engine") -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {"sub": sub, "exp": int(time.time() + seconds_left)}
    return f"{part({'alg': 'EdDSA'})}.{part(claims)}.c2ln"


def client(token: str, **over: Any) -> StreamClient:
    return StreamClient(cast(Any, None), Streams(""), token, **over)


async def test_a_token_with_time_left_is_kept() -> None:
    token = jwt(600)
    assert await client(token, env={}).fresh_token() == token


async def test_an_expiring_token_is_read_again_from_its_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    renewed = jwt(900)
    path.write_text(renewed)
    c = client(jwt(60), token_file=str(path), env={})
    assert await c.fresh_token() == renewed
    assert c.token == renewed  # queries and commands use it from now on


async def test_an_expiring_token_without_a_fresher_source_stops_the_run() -> None:
    old = jwt(30)
    c = client(old, env={"ALLUSE_TOKEN": old})
    with pytest.raises(CliError) as exc:
        await c.fresh_token()
    assert exc.value.code == USAGE and "no fresher one" in exc.value.message
