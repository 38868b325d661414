"""The text of the mail that verifies a billing address, in French and in English.

Both languages are always there (the person verifying may not be the one who chose the
account's language), the account's own language first.

Invariants:
- the code is in the text; a link is added only when the organization configured where its
  verification page lives (``link_base``): sealbill serves no such page itself yet, and a link
  to nowhere in a customer's mailbox is worse than none;
- the subject is one line and names the account; the body names the account, the code, when it
  expires (UTC) and what to do when the mail was not expected — nothing else about the account.

>>> subject, body = verification_text("A0001", "42.abc", "2026-12-01 10:00 UTC", None, "fr")
>>> subject
'Confirmez votre adresse de facturation / Confirm your billing address (A0001)'
>>> "42.abc" in body and "http" not in body
True
>>> body.index("Pour recevoir") < body.index("To receive")
True
"""

from __future__ import annotations

from urllib.parse import quote

_SUBJECT = {"fr": "Confirmez votre adresse de facturation", "en": "Confirm your billing address"}
_BODY = {
    "fr": ("Pour recevoir les factures du compte {account} à cette adresse, confirmez-la{how}\n\n"
           "{link}Code : {code}\n\n"
           "Ce code expire le {expires} et ne sert qu'une fois. Si vous n'attendiez pas ce "
           "message, ignorez-le : rien ne vous sera envoyé."),
    "en": ("To receive the invoices of account {account} at this address, confirm it{how}\n\n"
           "{link}Code: {code}\n\n"
           "It expires on {expires} and works once. If you did not expect this message, "
           "ignore it: nothing will be sent to you."),
}
_HOW = {
    "fr": (" en donnant ce code à votre fournisseur :", " en ouvrant ce lien, ou en donnant "
           "ce code à votre fournisseur :"),
    "en": (" by giving this code to your supplier:", " by opening this link, or by giving "
           "this code to your supplier:"),
}


def verification_text(account: str, code: str, expires: str, link_base: str | None,
                      locale: str) -> tuple[str, str]:
    """The subject and the plain-text body; ``locale`` ("fr" or "en") decides the order."""
    first = "en" if locale == "en" else "fr"
    order = (first, "en" if first == "fr" else "fr")
    link = f"{link_base}?code={quote(code, safe='')}" if link_base else None
    parts = [_BODY[lang].format(account=account, code=code, expires=expires,
                                how=_HOW[lang][link is not None],
                                link=f"  {link}\n\n" if link else "")
             for lang in order]
    subject = f"{_SUBJECT[order[0]]} / {_SUBJECT[order[1]]} ({account})"
    return subject, "\n\n-----\n\n".join(parts) + "\n"
