"""What an SMTP reply is about: a recipient, the message, or the session (pure, standard library).

Only a refusal of a *recipient* says anything about a customer's address; everything that
refuses the *client* — the relay does not accept us (``554 Client host rejected``), wants TLS
(``530 Must issue a STARTTLS command first``), wants a login, refuses to relay, refuses our
``MAIL FROM`` — is a configuration problem: the run pauses, no message is charged an attempt and
no contact is flagged (:mod:`sealbill.mail.smtp`, :mod:`sealbill.pipeline.delivery.outcome`).

:func:`rcpt_verdict` judges one reply to ``RCPT TO``:

- ``accepted`` — 250/251;
- ``session`` — the reply names the client, the sender, TLS, authentication or relaying
  (by its enhanced status code, RFC 3463, or by the wording Postfix, Exim and Sendmail use),
  or is a protocol error (``5.5.x``, 503): the relay's or our configuration, not the address;
- ``bounced`` — any other 5xx: this recipient will not take it;
- ``deferred`` — any other 4xx: this recipient, later.

When in doubt the verdict leans to ``session`` (a ``5.7.0``/``5.7.1`` policy refusal without
recipient wording, say): a wrongly paused run costs the operator one look at the reply; a
wrongly flagged contact silently stops a customer's invoices.

Invariant: ``bounced`` is never answered for a reply that names the client rather than the
recipient, whatever its code — a wrong judgement there would mark customers' contacts as bounced
for a relay's misconfiguration. A reply that names the recipient explicitly (``Recipient
address rejected``) is a recipient's, even with a ``5.7.1`` code.
"""

from __future__ import annotations

import re
from typing import Literal

RcptVerdict = Literal["accepted", "session", "bounced", "deferred"]

# Enhanced status codes (RFC 3463) about the sender side, security policy and protocol.
_CLIENT_STATUS = re.compile(r"^[45]\.(1\.[78]|5\.\d+|7\.(0|1|8|9|11|13|14|25|26|27))\b")
_RECIPIENT_STATUS = re.compile(r"^[45]\.(1\.[0-6]|1\.10|2\.\d+|3\.4)\b")
_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
_CLIENT_WORDS = re.compile(
    r"client host|client address|sender address rejected|relay access denied|relaying denied|"
    r"relay not permitted|helo command rejected|must issue a starttls|starttls|"
    r"authentication required|not authenticated|authentication failed|access denied for "
    r"client|your ip|blocked using|\bspf\b|\bdmarc\b", re.IGNORECASE)
_RECIPIENT_WORDS = re.compile(
    r"recipient address rejected|user unknown|no such user|mailbox (unavailable|not found|"
    r"full|disabled)|unknown user|does not exist|over quota|undeliverable address",
    re.IGNORECASE)
# 421 (the server closing the channel, often throttling) is left out: the recipient is
# deferred and retried with backoff rather than the whole run paused.
SESSION_CODES = frozenset({454, 503, 530, 534, 535, 538})


def enhanced_status(text: str) -> str | None:
    """The RFC 3463 enhanced status code at the start of a reply's text, if any."""
    found = _ENHANCED.match(text)
    return found.group(1) if found else None


def names_client(code: int, text: str) -> bool:
    """Does this refusal concern the client (session, sender, TLS, auth, relaying) rather than
    a recipient? Explicit recipient wording wins over everything but the session codes."""
    if code in SESSION_CODES:
        return True
    if _RECIPIENT_WORDS.search(text):
        return False
    status = enhanced_status(text)
    if status is not None and _RECIPIENT_STATUS.match(status):
        return False
    return bool(_CLIENT_WORDS.search(text) or (status and _CLIENT_STATUS.match(status)))


def rcpt_verdict(code: int, text: str) -> RcptVerdict:
    """The verdict on one ``RCPT TO`` reply (see the module)."""
    if code in (250, 251):
        return "accepted"
    if names_client(code, text) or code < 400:
        return "session"
    return "bounced" if code >= 500 else "deferred"
