"""Which SMTP replies are a recipient's, and each recipient's outcome across attempts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealbill.domain import recipient_outcomes as rcpts
from sealbill.domain.smtp_replies import names_client, rcpt_verdict


@pytest.mark.parametrize(("code", "text", "verdict"), [
    (250, "2.1.5 Ok", "accepted"),
    (550, "5.1.1 <a@b.example>: Recipient address rejected: User unknown in local recipient "
          "table", "bounced"),
    (550, "5.1.1 no such user", "bounced"),
    (552, "5.2.2 mailbox full", "bounced"),
    (550, "requested action not taken: mailbox unavailable", "bounced"),
    (554, "5.7.1 <a@b.example>: Recipient address rejected: Access denied", "bounced"),
    (450, "4.2.1 mailbox busy", "deferred"),
    (451, "4.3.0 temporary failure", "deferred"),
    (421, "too many concurrent messages, try again later", "deferred"),
    (554, "5.7.1 <host[10.0.0.1]>: Client host rejected: Access denied", "session"),
    (450, "4.7.1 Client host rejected: cannot find your hostname", "session"),
    (530, "5.7.0 Must issue a STARTTLS command first", "session"),
    (554, "5.7.1 <a@b.example>: Relay access denied", "session"),
    (553, "5.7.1 <me@seller.example>: Sender address rejected: not owned by user", "session"),
    (503, "5.5.1 Error: need MAIL command", "session"),
    (550, "5.7.1 Service unavailable; client [10.0.0.1] blocked using zen.spamhaus.org",
     "session"),
    (535, "5.7.8 Authentication credentials invalid", "session"),
])
def test_a_rcpt_reply_is_judged_by_what_it_names(code: int, text: str, verdict: str) -> None:
    assert rcpt_verdict(code, text) == verdict


@given(st.sampled_from([550, 551, 552, 553, 554, 450, 451, 452]), st.text(max_size=80))
def test_a_reply_naming_the_client_is_never_a_bounce(code: int, noise: str) -> None:
    text = f"5.7.1 {noise} Client host rejected: Access denied"
    if "recipient address rejected" in noise.lower():
        return  # explicitly the recipient's
    assert names_client(code, text) and rcpt_verdict(code, text) == "session"


TO = ("a@x.example", "b@x.example", "archive@seller.example")


def test_partial_acceptance_then_retry_goes_to_the_others_only() -> None:
    first = rcpts.merge({}, rcpts.Attempt("sent", TO, ("a@x.example", "archive@seller.example"),
                                          {"b@x.example": (450, "busy")}, 250, "ok"), "t1")
    assert first.delivered_now == ("a@x.example", "archive@seller.example")
    assert rcpts.status(TO, first.outcomes, TO[:2]) == "failed_temporary"
    assert rcpts.pending(TO, first.outcomes) == ("b@x.example",)
    second = rcpts.merge(first.outcomes, rcpts.Attempt("sent", ("b@x.example",),
                                                       ("b@x.example",)), "t2")
    assert second.delivered_now == ("b@x.example",)
    assert rcpts.status(TO, second.outcomes, TO[:2]) == "sent"
    assert rcpts.pending(TO, second.outcomes) == ()


def test_the_archive_copy_alone_does_not_make_an_invoice_delivered() -> None:
    merged = rcpts.merge({}, rcpts.Attempt("sent", TO, ("archive@seller.example",),
                                           {"a@x.example": (550, "no"),
                                            "b@x.example": (550, "no")}), "t")
    assert merged.bounced_now == ("a@x.example", "b@x.example")
    assert rcpts.status(TO, merged.outcomes, TO[:2]) == "failed_permanent"
    assert not rcpts.message_level(merged.outcomes)


def test_a_refused_message_is_the_messages_fault_and_reopens_on_retry() -> None:
    merged = rcpts.merge({}, rcpts.Attempt("permanent", TO, TO, {}, 554, "content refused"),
                         "t")
    assert merged.bounced_now == () and rcpts.message_level(merged.outcomes)
    assert rcpts.status(TO, merged.outcomes) == "failed_permanent"
    assert rcpts.pending(TO, rcpts.reopen(merged.outcomes)) == TO


REPLIES = st.sampled_from(["accept", "550", "450", "absent"])


@given(st.lists(st.tuples(st.sampled_from(["sent", "temporary", "permanent"]),
                          st.lists(REPLIES, min_size=3, max_size=3)), max_size=6))
def test_nobody_is_sent_to_again_once_delivered_or_bounced(
        attempts: list[tuple[str, list[str]]]) -> None:
    outcomes: dict[str, dict[str, object]] = {}
    delivered: list[str] = []
    for n, (outcome, replies) in enumerate(attempts):
        tried = rcpts.pending(TO, outcomes)
        if not tried:
            break
        by = dict(zip(TO, replies, strict=True))
        accepted = tuple(r for r in tried if by[r] == "accept")
        refused = {r: (int(by[r]), "x") for r in tried if by[r] in ("550", "450")}
        if outcome == "sent" and not accepted:
            outcome = "temporary"
        merged = rcpts.merge(outcomes, rcpts.Attempt(outcome, tried, accepted, refused),
                             str(n))
        assert set(merged.delivered_now) <= set(tried)
        delivered += merged.delivered_now
        outcomes = merged.outcomes
        for address, value in outcomes.items():
            if value["state"] in rcpts.SETTLED:
                assert address not in rcpts.pending(TO, outcomes)
    assert len(delivered) == len(set(delivered))  # each recipient delivered at most once
    status = rcpts.status(TO, outcomes)
    assert (status == "failed_temporary") == bool(
        [r for r in rcpts.pending(TO, outcomes)
         if (outcomes.get(r) or {}).get("state") != rcpts.REFUSED])
