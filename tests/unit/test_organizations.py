"""The seller organization is checked field by field, every problem at once."""

from __future__ import annotations

from sealbill.demo.seed import ORGANIZATION
from sealbill.pipeline.parties.organizations import organization_problems


def test_a_valid_organization_has_no_problem() -> None:
    assert organization_problems(dict(ORGANIZATION)) == []


def test_every_problem_names_its_field_at_once() -> None:
    values = {**ORGANIZATION, "siren": "123456789", "iban": "FR76 0000", "legal_info": ""}
    del values["city"]
    problems = organization_problems(values)
    assert [p.split("'")[1] for p in problems] == ["city", "legal_info", "siren", "iban"]
