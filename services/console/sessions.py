"""Signed-in sessions, held in this process only: the browser gets a random id, never a token.

Bounded: a session ends after `idle` seconds unused or `max_age` seconds in all. Each user
holds at most `per_user` sessions: a new one beyond that ends the user's own least recently
used. When the store is full, room is made at the expense of the user holding the most
sessions (its least recently used one), so one user signing in again and again only ever
evicts its own sessions, never another user's.
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
    # A scoped user's accounts, as last learnt (services/console/scope.py): (when, ids).
    visible: tuple[float, frozenset[str]] | None = field(default=None, repr=False)

    def pop_flash(self) -> dict[str, Any] | None:
        message, self.flash = self.flash, None
        return message


class Sessions:
    def __init__(
        self,
        *,
        idle: float,
        max_age: float,
        capacity: int,
        per_user: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.idle, self.max_age, self.capacity, self.clock = idle, max_age, capacity, clock
        self.per_user = per_user
        self._live: dict[str, Session] = {}
        self._by_user: dict[str, dict[str, Session]] = {}  # subject -> its sessions by id

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
        mine = self._by_user.get(subject, {})
        while mine and len(mine) >= self.per_user:
            self.drop(min(mine.values(), key=lambda s: s.last_seen).id)
        while len(self._live) >= self.capacity:
            self.drop(self._evictable().id)
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
        self._by_user.setdefault(subject, {})[session.id] = session
        return session

    def _evictable(self) -> Session:
        """The least recently used session of the user holding the most."""
        most = max(len(held) for held in self._by_user.values())
        crowded = [s for held in self._by_user.values() if len(held) == most for s in held.values()]
        return min(crowded, key=lambda s: s.last_seen)

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
        session = self._live.pop(session_id, None)
        if session is not None:
            held = self._by_user.get(session.subject, {})
            held.pop(session_id, None)
            if not held:
                self._by_user.pop(session.subject, None)
        return session

    def of(self, subject: str) -> int:
        """How many sessions the user holds."""
        return len(self._by_user.get(subject, {}))

    def _sweep(self) -> None:
        now = self.clock()
        for session in list(self._live.values()):
            if self._expired(session, now):
                self.drop(session.id)

    def __len__(self) -> int:
        return len(self._live)
