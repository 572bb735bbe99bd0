"""The one hierarchy of caller-fixable errors: each carries its rejection code.

Domain modules subclass `DomainError` (a class per rule, its code on the class); the pipeline
turns any of them into one `alluse.command.rejected` event. Pure: no I/O, no framework.
"""

from __future__ import annotations


class DomainError(Exception):
    """A rule a command broke; `code` is stable and machine-readable, `message` is for humans."""

    code: str = "rejected"

    def __init__(self, message: str, *, subject: str | None = None) -> None:
        super().__init__(message)
        self.message, self.subject = message, subject

    @property
    def reason(self) -> str:
        return self.message


def codes(base: type[DomainError]) -> tuple[str, ...]:
    """Every code the subclasses of `base` carry, sorted: the list cannot miss one."""
    found, todo = set(), list(base.__subclasses__())
    while todo:
        cls = todo.pop()
        found.add(cls.code)
        todo.extend(cls.__subclasses__())
    return tuple(sorted(found))
