"""Domain values and staged documents pickled as tuples come back equal, every field set."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, fields

import pytest

from sealbill.documents.filestore import Staged
from sealbill.documents.render import StoredDocuments
from sealbill.domain.compact import compact_pickle
from sealbill.domain.invoices import Invoice
from tests.unit.documents import samples


@pytest.mark.parametrize("make", [samples.domestic, samples.mixed_rates, samples.export_usd,
                                  samples.credit_note])
def test_an_invoice_comes_back_equal_with_every_field(make: object) -> None:
    invoice = make()  # type: ignore[operator]
    back = pickle.loads(pickle.dumps(invoice, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == invoice
    assert type(back.seller) is type(invoice.seller)  # the subclass's own fields too
    for name in (f.name for f in fields(Invoice)):
        assert getattr(back, name) == getattr(invoice, name)


def test_the_state_is_the_values_in_declaration_order() -> None:
    invoice = samples.domestic()
    address = invoice.buyer.address
    assert address.__getstate__() == tuple(getattr(address, f.name) for f in fields(address))
    assert invoice.seller.__getstate__()[-1] == invoice.seller.website  # Seller's last field


def test_staged_documents_come_back_equal() -> None:
    staged = Staged("/a/b.pdf", "ab" * 32, 12, "/a/.tmp-1.part")
    stored = StoredDocuments("FA-1", (("pdf", staged),), "typst-fallback", "too wide")
    assert pickle.loads(pickle.dumps(stored)) == stored


def test_a_class_of_one_field_is_refused() -> None:
    @dataclass(frozen=True, slots=True)
    class One:
        value: int

    with pytest.raises(TypeError):
        compact_pickle(One)
