"""VAT determination for a French seller."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealbill.domain.invoices import VatCategory
from sealbill.domain.taxes import (
    EU_MEMBER_STATES,
    TaxError,
    VatContext,
    VatRateClass,
    determine_vat,
    is_eu_member,
)

RATES = {VatRateClass.STANDARD: D("20"), VatRateClass.INTERMEDIATE: D("10"),
         VatRateClass.REDUCED: D("5.5"), VatRateClass.SUPER_REDUCED: D("2.1")}


@pytest.mark.parametrize(("rate_class", "rate"), RATES.items())
def test_domestic_sales_are_taxed_at_the_french_rate_of_their_class(
    rate_class: VatRateClass, rate: D
) -> None:
    for business, valid in ((True, True), (False, False)):
        treatment = determine_vat("FR", "FR", business, valid, rate_class)
        assert (treatment.category, treatment.rate) == (VatCategory.STANDARD, rate)
        assert (treatment.mention_fr, treatment.exemption_reason) == ("", None)


def test_monaco_is_french_for_vat() -> None:
    assert determine_vat("FR", "MC", True, True, VatRateClass.STANDARD).rate == 20


def test_an_eu_business_with_a_valid_vat_number_self_assesses() -> None:
    treatment = determine_vat("FR", "DE", True, True, VatRateClass.REDUCED)
    assert (treatment.category, treatment.rate) == (VatCategory.REVERSE_CHARGE, D(0))
    assert treatment.mention_fr.startswith("Autoliquidation")
    assert "283-2" in treatment.mention_fr and "2006/112/CE" in treatment.mention_fr
    assert "196" in treatment.mention_en
    assert treatment.exemption_reason == treatment.mention_fr
    assert treatment.mention("en") == treatment.mention_en


@pytest.mark.parametrize(("business", "valid"), [(True, False), (False, True), (False, False)])
def test_eu_consumers_and_businesses_without_valid_vat_number_pay_french_vat(
    business: bool, valid: bool
) -> None:
    treatment = determine_vat("FR", "IT", business, valid, VatRateClass.INTERMEDIATE)
    assert (treatment.category, treatment.rate) == (VatCategory.STANDARD, D(10))


@pytest.mark.parametrize("country", ["US", "CH", "GB", "NO", "JP"])
@pytest.mark.parametrize(("business", "article"), [(True, "259-1"), (False, "259 B")])
def test_buyers_outside_the_eu_are_out_of_scope_of_french_vat(
        country: str, business: bool, article: str) -> None:
    treatment = determine_vat("FR", country, business, False, VatRateClass.STANDARD)
    assert (treatment.category, treatment.rate) == (VatCategory.OUT_OF_SCOPE, D(0))
    assert article in treatment.mention_fr and treatment.mention_fr.startswith("TVA non")
    assert article in treatment.mention_en and treatment.exemption_reason


def test_the_eu_has_27_member_states_and_greece_answers_to_el() -> None:
    assert len(EU_MEMBER_STATES) == 27
    assert "GB" not in EU_MEMBER_STATES and "FR" in EU_MEMBER_STATES
    assert is_eu_member("el") and is_eu_member("GR")
    greek = determine_vat("FR", "EL", True, True, VatRateClass.STANDARD)
    assert greek.category is VatCategory.REVERSE_CHARGE


def test_a_foreign_seller_or_a_malformed_country_is_refused() -> None:
    with pytest.raises(TaxError, match="only French sellers"):
        determine_vat("BE", "FR", True, True, VatRateClass.STANDARD)
    with pytest.raises(TaxError, match="buyer_country"):
        determine_vat("FR", "Germany", True, True, VatRateClass.STANDARD)


countries = st.sampled_from(sorted(EU_MEMBER_STATES | {"MC", "US", "CH", "GB", "CA", "SN"}))


@given(countries, st.booleans(), st.booleans(), st.sampled_from(list(VatRateClass)))
def test_zero_rated_treatments_always_carry_their_legal_mentions(
    country: str, business: bool, valid: bool, rate_class: VatRateClass
) -> None:
    treatment = VatContext(country, business, valid).treatment(rate_class)
    zero_rated = treatment.category in (VatCategory.REVERSE_CHARGE, VatCategory.OUT_OF_SCOPE)
    assert (treatment.rate == 0) == zero_rated
    assert bool(treatment.mention_fr and treatment.mention_en
                and treatment.exemption_reason) == zero_rated
    if not zero_rated:
        assert treatment.rate == RATES[rate_class]
    expected_reverse = country in EU_MEMBER_STATES - {"FR"} and business and valid
    assert (treatment.category is VatCategory.REVERSE_CHARGE) == expected_reverse
