"""Errors of the application layer; each entrypoint maps them to an exit code or a status.

CLI: :class:`Invalid` and :class:`Conflict` exit 2 (bad usage: nothing was written), the others
exit 1. HTTP: the ``status`` attribute, as an RFC 9457 problem.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: the field (dotted path) and why."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"field {self.field!r}: {self.message}" if self.field else self.message


class AppError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class Invalid(AppError):
    """An input that sealbill refuses; ``problems`` names each field."""

    status = 422
    title = "Invalid input"


class NotFound(AppError):
    """No such object in the actor's organization (says nothing about other organizations)."""

    status = 404
    title = "Not found"


class Gone(AppError):
    status = 410
    title = "Gone"


class Conflict(AppError):
    """The change conflicts with what exists (a taken slug, a code already used...)."""

    status = 409
    title = "Conflict"


class StateError(AppError):
    """The object is not in a state that allows this (a run not held, a void row...)."""

    status = 409
    title = "Not allowed in this state"


class Forbidden(AppError):
    status = 403
    title = "Forbidden"


class Unauthenticated(AppError):
    status = 401
    title = "Unauthenticated"


class PreconditionFailed(AppError):
    status = 412
    title = "Precondition failed"
