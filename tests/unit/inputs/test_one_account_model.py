"""The account models: an update (``AccountPatch``) refuses what a creation (``AccountIn``) and
an import record (``AccountRecordIn``) refuse, naming the same field with the same message;
empty optional values are ``None`` whichever door they came by."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from sealbill.inputs.accounts import AccountIn, AccountPatch, AccountRecordIn
from sealbill.inputs.problems import field_problems

VALID = {"reference": "N0001", "name": "Nouveau SA", "address_line1": "1 rue A",
         "postcode": "75011", "city": "Paris", "country": "FR"}
HOSTILE = ["x\x00y", "a\u202eb", "a\u200bb", "4111-1111-1111-1111", "DE89 3704 0044 0532 0130 00",
           "Z" * 201, 12, ["list"]]
PATCHABLE = sorted(set(AccountPatch.model_fields) & set(AccountIn.model_fields))


def _refusal(model: type[BaseModel], data: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return field_problems(exc)
    return []


@pytest.mark.parametrize("field", PATCHABLE)
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_an_update_refuses_what_a_creation_and_an_import_refuse(field: str, value: Any) -> None:
    created = _refusal(AccountIn, {**VALID, field: value})
    imported = _refusal(AccountRecordIn, {**VALID, field: value})
    patched = _refusal(AccountPatch, {field: value})
    assert created == imported == patched
    assert [name for name, _ in created] == [field]


def test_the_files_internal_test_is_the_apis_is_internal_test() -> None:
    assert AccountIn.model_validate({**VALID, "internal_test": "yes"}).is_internal_test is True
    assert AccountIn.model_validate({**VALID, "is_internal_test": True}).is_internal_test is True
    assert AccountRecordIn.model_validate({**VALID, "internal_test": ""}).is_internal_test is False


def test_empty_optional_text_is_none_at_every_door() -> None:
    empty = {"vat_id": "", "siren": None, "currency": "", "locale": "", "payment_kind": "",
             "payment_display": "", "electronic_address": ""}
    for model in (AccountIn, AccountRecordIn):
        account = model.model_validate({**VALID, **empty})
        assert {name: getattr(account, name) for name in empty} == dict.fromkeys(empty)
