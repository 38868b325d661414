"""A refused form, shown again with what was typed and each field's error.

A use case refuses bad input with :class:`~sealbill.app.errors.AppError` (an
:class:`~sealbill.app.errors.Invalid` names each field, with the same validation as the CLI and
the API); the page is rendered again with the refusal's status, the message in an alert, the
problems next to their fields and the values the operator typed (never a secret: the console's
forms carry none besides the CSRF token, which is dropped here).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sealbill.app.errors import AppError


@dataclass(frozen=True)
class Failed:
    form: str  # which form of the page was refused
    message: str
    fields: dict[str, str] = field(default_factory=dict)  # field -> why
    values: dict[str, str] = field(default_factory=dict)  # what was typed
    status: int = 422

    def error(self, name: str) -> str | None:
        return self.fields.get(name)


def failed(form: str, exc: AppError, values: dict[str, str]) -> Failed:
    fields: dict[str, str] = {}
    for problem in exc.problems:
        # A nested path (``prices.0.amount``) is shown on its first part, the form's field.
        fields.setdefault(problem.field.split(".")[0] or "_", problem.message)
    return Failed(form, exc.message, fields,
                  {k: v for k, v in values.items() if k != "csrf"}, exc.status)


def given(values: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """The non-blank fields among ``names`` (a blank field keeps the use case's default)."""
    return {n: values[n].strip() for n in names if values.get(n, "").strip()}
