"""The address policy: reserved, own and placeholder addresses never receive an invoice."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealbill.domain.address_policy import (
    IP_LITERAL,
    NOT_ALLOWED,
    OWN,
    PLACEHOLDER,
    RESERVED,
    AddressPolicy,
    allow_list_problems,
)

ORG = {"sender_email": "factures@acme-billing.fr", "archive_email": "archive@acme-billing.fr",
       "dpo_email": "dpo@privacy-firm.eu", "electronic_address": "einvoice@acme-billing.fr",
       "address_policy": {"allowed_reserved_domains": ["customer-1.example", "shop.test"],
                          "denied_local_parts": ["accounts-payable-placeholder"]}}
POLICY = AddressPolicy.for_organization(ORG)

label = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
local = st.from_regex(r"[a-z][a-z0-9._]{0,8}[a-z0-9]", fullmatch=True).filter(
    lambda s: ".." not in s and s not in POLICY.placeholders)
public_tld = st.sampled_from(["fr", "de", "com", "net", "org", "eu", "io", "co.uk"])


@given(local, st.lists(label, min_size=1, max_size=3), st.sampled_from(
    ["invalid", "localhost", "local", "onion", "internal"]),
    st.booleans(), st.booleans())
def test_special_use_names_are_refused_whatever_the_flags(user: str, labels: list[str],
                                                           tld: str, internal: bool,
                                                           archive: bool) -> None:
    domain = ".".join([*labels, tld])
    allowing = AddressPolicy(allowed_reserved=frozenset({domain}))
    refusal = allowing.refusal(f"{user}@{domain}", internal_test=internal, archive=archive)
    assert refusal is not None and refusal.kind == RESERVED


@given(local, st.lists(label, max_size=2), st.sampled_from(["com", "net", "org", "fr"]))
def test_example_domains_are_refused_even_when_allow_listed(user: str, sub: list[str],
                                                            tld: str) -> None:
    domain = ".".join([*sub, "example", tld])
    allowing = AddressPolicy(allowed_reserved=frozenset({domain}))
    refusal = allowing.refusal(f"{user}@{domain}", internal_test=True)
    assert refusal is not None and refusal.kind == RESERVED
    assert allow_list_problems([domain])


@given(local, st.ip_addresses())
def test_ip_literals_are_refused(user: str, ip: object) -> None:
    for domain in (f"[{ip}]", str(ip)):
        refusal = POLICY.refusal(f"{user}@{domain}", internal_test=True)
        assert refusal is not None and refusal.kind in (IP_LITERAL, RESERVED)


@given(local, label, st.sampled_from(["example", "test"]))
def test_fictitious_domains_receive_only_when_listed_exactly(user: str, name: str,
                                                             tld: str) -> None:
    domain = f"{name}.{tld}"
    listed = domain in POLICY.allowed_reserved
    refusal = POLICY.refusal(f"{user}@{domain}")
    assert (refusal is None) == listed
    if not listed:
        assert refusal is not None and refusal.kind == NOT_ALLOWED
    # a subdomain of a listed name is not listed
    sub = POLICY.refusal(f"{user}@mail.customer-1.example")
    assert sub is not None and sub.kind == NOT_ALLOWED


@given(local, st.lists(label, min_size=1, max_size=2), public_tld)
def test_ordinary_addresses_receive(user: str, labels: list[str], tld: str) -> None:
    domain = ".".join([*labels, tld])
    if "example" in labels or domain.endswith("acme-billing.fr"):
        return
    assert POLICY.refusal(f"{user}@{domain}") is None


@pytest.mark.parametrize("address", [
    "noreply@client.fr", "No-Reply@client.fr", "test@client.fr", "invalid@client.fr",
    "test+billing@client.fr", "do-not-reply@client.fr", "accounts-payable-placeholder@x.fr"])
def test_placeholders_are_refused(address: str) -> None:
    refusal = POLICY.refusal(address, internal_test=True)
    assert refusal is not None and refusal.kind == PLACEHOLDER


@pytest.mark.parametrize("address", [
    "factures@acme-billing.fr", "anyone@acme-billing.fr", "x@eu.acme-billing.fr",
    "DPO@privacy-firm.eu", "archive@acme-billing.fr", "einvoice@acme-billing.fr"])
def test_own_addresses_receive_only_on_internal_test_accounts(address: str) -> None:
    refusal = POLICY.refusal(address)
    assert refusal is not None and refusal.kind == OWN
    assert POLICY.refusal(address, internal_test=True) is None


def test_the_archive_may_be_at_the_own_domain_but_not_reserved() -> None:
    assert POLICY.refusal("archive@acme-billing.fr", archive=True) is None
    refusal = POLICY.refusal("archive@localhost", archive=True)
    assert refusal is not None and refusal.kind == RESERVED


@pytest.mark.parametrize(("entry", "problem"), [
    ("example.com", "placeholders"), ("localhost", "single-label"), ("*.example", "wildcard"),
    ("shop.invalid", "special-use"), ("client.fr", "not a reserved name")])
def test_the_allow_list_refuses_what_it_cannot_allow(entry: str, problem: str) -> None:
    found = allow_list_problems([entry])
    assert len(found) == 1 and problem in found[0]
    assert allow_list_problems(["customer-7.example", "shop.test"]) == []
