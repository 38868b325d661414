"""Slotted dataclasses pickled as the tuple of their values.

A ``slots=True`` dataclass pickles through ``dataclasses.fields()`` on every object, both
ways; the render stage sends each invoice (its parties, lines and VAT rows: a dozen such
objects) to a worker and gets five staged files back, so that lookup was ~40 µs an invoice.

Invariants:
- the state is every field's value in declaration order, set back without ``__init__``
  (exactly what the dataclass's own pickling does, minus the per-object field lookup);
- only for pickles made and read by the same code (a process and the workers it starts).
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter
from typing import Any, TypeVar

C = TypeVar("C", bound=type)


def compact_pickle(cls: C) -> C:
    """Give the slotted dataclass ``cls`` a tuple state (decorate above ``@dataclass``)."""
    names = tuple(field.name for field in fields(cls))
    if len(names) < 2:
        raise TypeError(f"{cls.__name__}: a state of one value is not worth it")
    values = attrgetter(*names)  # a tuple, given two names or more
    setter = object.__setattr__  # frozen dataclasses refuse setattr

    def __getstate__(self: Any) -> tuple[Any, ...]:
        state: tuple[Any, ...] = values(self)
        return state

    def __setstate__(self: Any, state: tuple[Any, ...]) -> None:
        for name, value in zip(names, state, strict=True):
            setter(self, name, value)

    setattr(cls, "__getstate__", __getstate__)  # noqa: B010 (mypy: no method assignment)
    setattr(cls, "__setstate__", __setstate__)  # noqa: B010
    return cls
