"""Signed-in sessions, held in this process only: the browser gets a random id, never a token.

Bounded: a session ends after `idle` seconds unused or `max_age` seconds in all, and when the
store is full the least recently used one makes room.
"""

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Session:
    id: str
    name: str  # the user name signed in with, for the page; `subject` is the token's
    subject: str
    role: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    access_expires: float
    created: float
    last_seen: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    # One message for the next page (a command's outcome), shown once.
    flash: dict[str, Any] | None = None

    def pop_flash(self) -> dict[str, Any] | None:
        message, self.flash = self.flash, None
        return message


class Sessions:
    def __init__(
        self, *, idle: float, max_age: float, capacity: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.idle, self.max_age, self.capacity, self.clock = idle, max_age, capacity, clock
        self._live: dict[str, Session] = {}

    def create(
        self,
        *,
        name: str,
        subject: str,
        role: str,
        access_token: str,
        refresh_token: str | None,
        expires_in: float,
    ) -> Session:
        self._sweep()
        while len(self._live) >= self.capacity:
            del self._live[min(self._live.values(), key=lambda s: s.last_seen).id]
        now = self.clock()
        session = Session(
            id=secrets.token_urlsafe(32),
            name=name,
            subject=subject,
            role=role,
            access_token=access_token,
            refresh_token=refresh_token,
            access_expires=now + expires_in,
            created=now,
            last_seen=now,
        )
        self._live[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        session = self._live.get(session_id or "")
        if session is None:
            return None
        now = self.clock()
        if self._expired(session, now):
            self.drop(session.id)
            return None
        session.last_seen = now
        return session

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self.idle or now - session.created > self.max_age

    def drop(self, session_id: str) -> Session | None:
        return self._live.pop(session_id, None)

    def _sweep(self) -> None:
        now = self.clock()
        for session in list(self._live.values()):
            if self._expired(session, now):
                self.drop(session.id)

    def __len__(self) -> int:
        return len(self._live)
