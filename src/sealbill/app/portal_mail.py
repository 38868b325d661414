"""Mails of the customer portal (sign-in links, verification of invited addresses): built like
the verification mail of :mod:`sealbill.pipeline.parties.verify`, sent by the same transports, to
one
address only, built from its contact record."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import Any

from sealbill.app.errors import StateError
from sealbill.mail.smtp import Outcome
from sealbill.pipeline.delivery.send import Transport

TransportFactory = Callable[[], Transport]

LOGIN_TEXT = {
    "fr": ("Votre lien de connexion à l'espace client (compte {account}) :\n\n{link}\n\n"
           "Ce lien expire le {expires} et ne sert qu'une fois. Si vous ne l'avez pas demandé, "
           "ignorez ce message."),
    "en": ("Your sign-in link to the customer portal (account {account}):\n\n{link}\n\n"
           "It expires on {expires} and works once. If you did not ask for it, ignore this "
           "message."),
}
LOGIN_SUBJECT = "Votre lien de connexion / Your sign-in link ({account})"


def login_text(account: str, link: str, expires: datetime, locale: str) -> tuple[str, str]:
    first = "en" if locale == "en" else "fr"
    order = (first, "en" if first == "fr" else "fr")
    when = expires.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n\n---\n\n".join(LOGIN_TEXT[lang].format(account=account, link=link,
                                                      expires=when) for lang in order)
    return LOGIN_SUBJECT.format(account=account), body


def send_text(factory: TransportFactory, org: Any, to: str, subject: str, body: str) -> None:
    """One plain-text message from the organization's sender to ``to`` only."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(str(org["sender_name"]), addr_spec=str(org["sender_email"]))
    msg["To"] = Address(addr_spec=to)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=str(org["sender_email"]).rsplit("@", 1)[1])
    msg.set_content(body)
    transport = factory()
    try:
        result = transport.send(str(org["sender_email"]), (to,), msg.as_bytes(policy=SMTP))
    finally:
        transport.close()
    if result.outcome is not Outcome.SENT:
        raise StateError(f"the mail was not accepted: {result.detail}")
