"""Retention settings read as the README documents them: seconds or ISO 8601."""

from datetime import timedelta

import pytest

from shared.infra.runtime.settings import Settings


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("60", timedelta(seconds=60)),
        ("0.5", timedelta(seconds=0.5)),
        ("PT1H", timedelta(hours=1)),
        ("P7D", timedelta(days=7)),
    ],
)
def test_a_retention_in_plain_seconds_or_iso_8601_is_read(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: timedelta
) -> None:
    monkeypatch.setenv("ALLUSE_LIFECYCLE_RETENTION", value)
    settings = Settings(redis_url="redis://x", database_url="postgresql://x")
    assert settings.lifecycle_retention == expected


def test_a_duration_that_is_neither_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLUSE_DEDUP_WINDOW", "a week")
    with pytest.raises(ValueError, match="dedup_window"):
        Settings(redis_url="redis://x", database_url="postgresql://x")
