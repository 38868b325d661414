"""Blast radius, pure: ledger rows and contact history in, exposures and their summary out."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from sealbill.domain.blast_radius import (
    LinkCorrection,
    Reason,
    compute,
)
from tests.unit.incident.history import History, at, message, subjects

SUBJECTS = subjects({1: "FR", 2: "DE", 3: "CH", 4: "el"})


def three_customers() -> History:
    """Accounts 1, 2, 3 each with one verified billing contact 11, 12, 13, verified at t-60."""
    history = History()
    for account_id in (1, 2, 3):
        contact_id = 10 + account_id
        history.contact(contact_id, f"billing@customer{account_id}.test", at(-120))
        history.verified(contact_id, account_id, at(-60))
    return history


def test_swapped_contacts_make_each_the_unintended_recipient_of_the_others_invoice() -> None:
    messages = [message(1, [(12, "billing@customer2.test")], at(5)),
                message(2, [(11, "billing@customer1.test")], at(6)),
                message(3, [(13, "billing@customer3.test")], at(7))]

    radius = compute(messages, three_customers().build(), [], SUBJECTS)

    view = radius.as_recorded
    assert [(e.account_id, e.email) for e in view.exposures] == [
        (1, "billing@customer2.test"), (2, "billing@customer1.test")]
    assert all(e.reason is Reason.NEVER_LINKED for e in view.exposures)
    assert [i.subject.account_id for i in view.subjects] == [1, 2]
    assert [r.email for r in view.recipients] == ["billing@customer1.test",
                                                  "billing@customer2.test"]
    assert view.recipients[0].account_references == ("ACC-002",)
    assert (view.subject_count, view.record_count, view.disclosure_count) == (2, 2, 2)
    assert (view.first_sent_at, view.last_sent_at) == (at(5), at(6))
    assert view.member_states == ("DE", "FR")
    assert radius.messages_in_scope == 3
    assert len(radius.judgements) == 3


def test_accountant_verified_on_forty_accounts_is_not_a_leak() -> None:
    history = History().contact(99, "cabinet@accountants.test", at(-500))
    messages = []
    for account_id in range(100, 140):
        history.verified(99, account_id, at(-400))
        messages.append(message(account_id, [(99, "cabinet@accountants.test")], at(account_id)))

    radius = compute(messages, history.build(), [], {})

    assert radius.messages_in_scope == 40
    assert not radius.as_recorded.has_leak
    assert not radius.as_corrected.has_leak
    assert {j.as_recorded.reason for j in radius.judgements} == {Reason.VERIFIED_BILLING_LINK}


def test_accountant_gets_no_pass_on_an_account_she_is_not_verified_on() -> None:
    history = History().contact(99, "cabinet@accountants.test", at(-500))
    history.verified(99, 1, at(-400)).verified(99, 2, at(-400))
    messages = [message(account_id, [(99, "cabinet@accountants.test")], at(account_id))
                for account_id in (1, 2, 3)]

    radius = compute(messages, history.build(), [], SUBJECTS)

    assert [e.account_id for e in radius.as_recorded.exposures] == [3]


def test_bad_migration_recorded_as_verified_is_found_only_through_the_operators_correction(
) -> None:
    history = three_customers()
    # The migration re-linked contact 12 to account 1 and marked it verified, through events.
    history.verified(12, 1, at(-10))
    messages = [message(1, [(12, "billing@customer2.test")], at(5))]
    correction = LinkCorrection(1, 12, 1, entitled=False, valid_from=at(-10), valid_to=None,
                                reason="swapped by migration 0042")

    radius = compute(messages, history.build(), [correction], SUBJECTS)

    assert not radius.as_recorded.has_leak
    assert [(e.account_id, e.email, e.reason) for e in radius.as_corrected.exposures] == [
        (1, "billing@customer2.test", Reason.CORRECTED_NOT_ENTITLED)]
    assert radius.effective is radius.as_corrected
    assert radius.judgements[0].as_corrected.note == "swapped by migration 0042"


def test_a_correction_outside_its_window_or_for_another_pair_changes_nothing() -> None:
    history = three_customers()
    messages = [message(1, [(11, "billing@customer1.test")], at(5))]
    corrections = [
        LinkCorrection(1, 11, 1, entitled=False, valid_from=at(10), valid_to=None, reason="x"),
        LinkCorrection(2, 11, 1, entitled=False, valid_from=None, valid_to=at(5), reason="y"),
        LinkCorrection(3, 11, 2, entitled=False, valid_from=None, valid_to=None, reason="z"),
    ]

    radius = compute(messages, history.build(), corrections, SUBJECTS)

    assert not radius.as_corrected.has_leak


def test_the_latest_correction_of_a_pair_wins() -> None:
    history = three_customers()
    messages = [message(1, [(12, "billing@customer2.test")], at(5))]
    corrections = [
        LinkCorrection(2, 12, 1, entitled=True, valid_from=None, valid_to=None, reason="later"),
        LinkCorrection(1, 12, 1, entitled=False, valid_from=None, valid_to=None, reason="first"),
    ]

    radius = compute(messages, history.build(), corrections, SUBJECTS)

    assert radius.as_recorded.has_leak
    assert not radius.as_corrected.has_leak
    assert radius.judgements[0].as_corrected.reason is Reason.CORRECTED_ENTITLED


def test_no_unintended_recipient_is_said_with_zero_counts_and_no_span() -> None:
    messages = [message(a, [(10 + a, f"billing@customer{a}.test")], at(a)) for a in (1, 2, 3)]

    radius = compute(messages, three_customers().build(), [], SUBJECTS)

    view = radius.effective
    assert not view.has_leak
    assert (view.subject_count, view.record_count, view.disclosure_count) == (0, 0, 0)
    assert view.first_sent_at is None and view.member_states == ()
    assert radius.messages_in_scope == 3 and len(radius.judgements) == 3


def test_link_state_is_the_one_at_sending_time_not_today() -> None:
    history = History().contact(11, "billing@customer1.test", at(-120))
    history.link(11, 1, "linked", at(-100)).link(11, 1, "verified", at(20))
    history.link(11, 1, "revoked", at(40))
    before, between, after = (message(1, [(11, "billing@customer1.test")], at(m))
                              for m in (10, 30, 50))

    radius = compute([before, between, after], history.build(), [], SUBJECTS)

    reasons = [j.as_recorded.reason for j in radius.judgements]
    assert reasons == [Reason.LINK_PENDING, Reason.VERIFIED_BILLING_LINK, Reason.LINK_REVOKED]


def test_a_link_verified_in_the_same_instant_as_the_send_counts() -> None:
    history = History().contact(11, "billing@customer1.test", at(0)).verified(11, 1, at(5))

    radius = compute([message(1, [(11, "billing@customer1.test")], at(5))], history.build(),
                     [], SUBJECTS)

    assert not radius.as_recorded.has_leak


def test_mail_to_an_address_the_contact_did_not_have_at_the_time_is_an_exposure() -> None:
    # A migration that swapped the addresses under the contact ids leaves the history intact.
    messages = [message(1, [(11, "billing@customer2.test")], at(5))]

    radius = compute(messages, three_customers().build(), [], SUBJECTS)

    exposure, = radius.as_recorded.exposures
    assert exposure.reason is Reason.ADDRESS_MISMATCH
    assert radius.judgements[0].as_recorded.note == (
        "contact 11 was billing@customer1.test at sending time")


def test_domain_case_does_not_make_an_address_different() -> None:
    messages = [message(1, [(11, "billing@CUSTOMER1.test")], at(5))]

    assert not compute(messages, three_customers().build(), [], SUBJECTS).as_recorded.has_leak


def test_an_admin_contact_is_not_entitled_to_invoices() -> None:
    history = three_customers().contact(21, "admin@customer1.test", at(-100))
    history.verified(21, 1, at(-50), role="admin")

    radius = compute([message(1, [(21, "admin@customer1.test")], at(5))], history.build(),
                     [], SUBJECTS)

    assert radius.as_recorded.exposures[0].reason is Reason.NOT_BILLING_ROLE


def test_the_controllers_archive_copy_is_not_a_disclosure() -> None:
    messages = [message(1, [(11, "billing@customer1.test"), (None, "archive@Seller.TEST")],
                        at(5))]

    radius = compute(messages, three_customers().build(), [], SUBJECTS,
                     archive_addresses=["archive@seller.test"])

    assert not radius.as_recorded.has_leak
    assert Reason.CONTROLLER_ARCHIVE in {j.as_recorded.reason for j in radius.judgements}


def test_a_recipient_without_contact_id_is_judged_by_the_address_history() -> None:
    known = message(1, [(None, "billing@customer1.test")], at(5))
    stranger = message(1, [(None, "someone@elsewhere.test")], at(6))

    radius = compute([known, stranger], three_customers().build(), [], SUBJECTS)

    assert [(e.email, e.reason) for e in radius.as_recorded.exposures] == [
        ("someone@elsewhere.test", Reason.UNKNOWN_RECIPIENT)]


def test_member_states_separate_eea_from_other_countries_and_read_el_as_greece() -> None:
    history = History().contact(50, "x@stranger.test", at(-10))
    messages = [message(a, [(50, "x@stranger.test")], at(a)) for a in (1, 2, 3, 4)]

    view = compute(messages, history.build(), [], SUBJECTS).effective

    assert view.member_states == ("DE", "FR", "GR")
    assert view.other_countries == ("CH",)
    assert view.consumer_count == 2  # odd account ids are consumers in the fixture
    assert [r.account_references for r in view.recipients] == [
        ("ACC-001", "ACC-002", "ACC-003", "ACC-004")]


def test_one_message_to_several_strangers_is_one_record_and_several_disclosures() -> None:
    history = three_customers()
    messages = [message(1, [(11, "billing@customer1.test"), (12, "billing@customer2.test"),
                            (13, "billing@customer3.test")], at(5), categories=("amount",))]

    view = compute(messages, history.build(), [], SUBJECTS).effective

    assert (view.record_count, view.disclosure_count, view.subject_count) == (1, 2, 1)
    assert view.subjects[0].recipients == ("billing@customer2.test", "billing@customer3.test")
    assert view.data_categories == ("amount",)


_instants = st.integers(min_value=-50, max_value=50)


@settings(max_examples=60, deadline=None)
@given(
    verifications=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 4), _instants),
                           max_size=10),
    sends=st.lists(st.tuples(st.integers(1, 4), st.lists(st.integers(1, 4), min_size=1,
                                                          max_size=3), _instants),
                   min_size=1, max_size=12),
)
def test_exposures_are_exactly_the_recipients_without_a_verified_link_at_sending_time(
        verifications: list[tuple[int, int, int]],
        sends: list[tuple[int, list[int], int]]) -> None:
    history = History()
    for contact_id in range(1, 5):
        history.contact(contact_id, f"c{contact_id}@x.test", at(-1000))
    for contact_id, account_id, minute in verifications:
        history.verified(contact_id, account_id, at(minute))
    messages = [message(account_id, [(c, f"c{c}@x.test") for c in contacts], at(minute))
                for account_id, contacts, minute in sends]

    view = compute(messages, history.build(), [], subjects({a: "FR" for a in range(1, 5)}))
    expected = {(m.message_id, r.contact_id) for m in messages for r in m.recipients
                if not any(c == r.contact_id and a == m.account_id and at(minute) <= m.sent_at
                           for c, a, minute in verifications)}

    assert {(e.message_id, e.contact_id) for e in view.as_recorded.exposures} == expected
    assert view.as_recorded.subject_count == len({
        m.account_id for m in messages if any(m.message_id == e[0] for e in expected)})
    assert view.as_recorded.record_count == len({e[0] for e in expected})
    assert view.as_corrected == view.as_recorded  # no correction, same view


def test_times_compare_across_offsets() -> None:
    from datetime import timedelta, timezone

    paris = timezone(timedelta(hours=2))
    history = History().contact(11, "billing@customer1.test", at(-10))
    history.verified(11, 1, datetime(2026, 5, 14, 13, 40, tzinfo=paris))  # 11:40 UTC
    sent = message(1, [(11, "billing@customer1.test")], datetime(2026, 5, 14, 11, 39, tzinfo=UTC))

    assert compute([sent], history.build(), [], SUBJECTS).as_recorded.has_leak
