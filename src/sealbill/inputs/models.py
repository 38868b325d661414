"""The base of every input model, the field types they share, and :func:`parse`.

Every door — the CLI, the HTTP API, the web console, the file imports — reads a record through
a model of :mod:`sealbill.inputs` (one module per subject), so a value is accepted or refused
by the same rule whichever door it came in by. Models refuse unknown fields
(``extra="forbid"``) and floats for money (prices are strings or integers, parsed as
``Decimal``); names and descriptions are text checked by :func:`~sealbill.inputs.fields.checked`
(NFC, no control/bidi/invisible character, bounded). :func:`parse` turns a ``ValidationError``
into :class:`~sealbill.app.errors.Invalid` naming every field, with the same field path and
message as the API's 422 answer.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, ValidationError

from sealbill.domain.money import CURRENCY_EXPONENTS
from sealbill.inputs.fields import TEXT_ONLY, checked
from sealbill.inputs.problems import message_of

M = TypeVar("M", bound=BaseModel)


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("give decimals as strings (\"0.10\"), never as floats")
    return value


Dec = Annotated[Decimal, BeforeValidator(_no_float)]
Text = Annotated[str, TEXT_ONLY, checked(200, secrets=False)]
"""A required name or description: 1–200 characters of checked text."""
Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
ExternalId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


def problem_check(problem: str | None) -> None:
    """Raise the problem a checker returned (python-stdnum, schwifty), if any."""
    if problem:
        raise ValueError(problem)


def one_email(value: str | None) -> str | None:
    """One e-mail address, normalized (:func:`sealbill.store.parties.records.normalize_email`)."""
    if value is None:
        return None
    from sealbill.store.parties.records import normalize_email

    return normalize_email(value)


def known_currency(value: str) -> str:
    """An ISO 4217 code sealbill knows, upper-cased."""
    if value.upper() not in CURRENCY_EXPONENTS:
        raise ValueError(f"unknown currency {value!r}")
    return value.upper()


class Model(BaseModel):
    """Operator input: unknown fields refused, surrounding white space ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CustomerRecord(BaseModel):
    """Customer-supplied records: unknown fields refused; text is not stripped before it is
    checked, so a trailing control character is refused rather than silently dropped."""

    model_config = ConfigDict(extra="forbid")


def parse(model: type[M], data: Any, record: str = "") -> M:
    """``data`` as ``model``, or :class:`Invalid` naming each wrong field (nothing written).

    Field paths and messages are those of the API's 422 answer (``api/problems.py``)."""
    from sealbill.app.errors import Invalid, Problem

    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [Problem(".".join(str(p) for p in err["loc"]), message_of(err))
                    for err in exc.errors(include_url=False)]
        label = f"{record}: " if record else ""
        raise Invalid(f"{label}{len(problems)} problem(s); nothing was written",
                      problems) from None
