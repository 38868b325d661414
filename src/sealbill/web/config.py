"""What the web console and portal need from their environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sealbill import settings
from sealbill.app.portal_mail import TransportFactory


def smtp_transport() -> TransportFactory:
    """Transports built from ``SEALBILL_SMTP_*`` (the same settings as ``run send``)."""
    from sealbill.mail import config as mail_config
    from sealbill.mail.smtp import SmtpSender

    def factory() -> SmtpSender:
        return SmtpSender(mail_config.smtp_config())

    return factory


@dataclass(frozen=True)
class WebConfig:
    """``public_url``: where browsers reach this server (links in mails start with it);
    ``secure_cookies``: the ``Secure`` flag (always on outside tests on plain loopback HTTP);
    ``secret_key``: the installation's key that signs codes and links."""

    public_url: str
    secret_key: bytes
    transport: TransportFactory
    secure_cookies: bool = True

    @classmethod
    def from_environment(cls) -> WebConfig:
        from sealbill.pipeline.parties.verify import secret_key

        return cls(public_url=os.environ.get("SEALBILL_PUBLIC_URL", "http://127.0.0.1:8000")
                   .rstrip("/"),
                   secret_key=secret_key(Path(settings.files_dir(None))),
                   transport=smtp_transport())
