"""argon2id password hashing in PHC string format, with the parameters from settings."""

import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int) -> None:
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._decoy: str | None = None

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, phc: str, password: str) -> bool:
        try:
            return self.hasher.verify(phc, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, phc: str) -> bool:
        return self.hasher.check_needs_rehash(phc)

    def decoy(self, password: str) -> None:
        """Spend the time a real check would, so an unknown username is not told apart by timing."""
        if self._decoy is None:
            self._decoy = self.hash(secrets.token_urlsafe(16))
        self.verify(self._decoy, password)
