"""SMTP and DKIM settings, read from the environment (never from the database).

``SEALBILL_SMTP_HOST`` (127.0.0.1), ``SEALBILL_SMTP_PORT`` (2525), ``SEALBILL_SMTP_SECURITY``
(``none`` | ``starttls`` | ``ssl``), ``SEALBILL_SMTP_USER`` / ``SEALBILL_SMTP_PASSWORD`` (AUTH,
only over TLS unless the host is loopback), ``SEALBILL_SMTP_TIMEOUT`` (seconds, 30),
``SEALBILL_SMTP_CA_FILE`` (extra CA bundle for a private relay);
``SEALBILL_DKIM_KEY`` (PEM path), ``SEALBILL_DKIM_SELECTOR``, ``SEALBILL_DKIM_DOMAIN``
(defaults to the organization's sender domain).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SECURITY_MODES = ("none", "starttls", "ssl")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class ConfigError(ValueError):
    """A setting is missing or impossible; nothing is sent with it."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 2525
    security: str = "none"
    user: str | None = None
    password: str | None = None
    timeout: float = 30.0
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise ConfigError(f"SEALBILL_SMTP_SECURITY must be one of {SECURITY_MODES}")
        if (self.user is None) != (self.password is None):
            raise ConfigError("SEALBILL_SMTP_USER and SEALBILL_SMTP_PASSWORD go together")
        # A password never crosses the network in clear text.
        if self.user and self.security == "none" and self.host not in _LOOPBACK:
            raise ConfigError("SMTP AUTH needs SEALBILL_SMTP_SECURITY=starttls or ssl")


@dataclass(frozen=True)
class DkimConfig:
    key_path: Path
    selector: str
    domain: str | None


def smtp_config(env: Mapping[str, str] | None = None) -> SmtpConfig:
    env = os.environ if env is None else env
    try:
        return SmtpConfig(
            host=env.get("SEALBILL_SMTP_HOST", "127.0.0.1"),
            port=int(env.get("SEALBILL_SMTP_PORT", "2525")),
            security=env.get("SEALBILL_SMTP_SECURITY", "none").lower(),
            user=env.get("SEALBILL_SMTP_USER") or None,
            password=env.get("SEALBILL_SMTP_PASSWORD") or None,
            timeout=float(env.get("SEALBILL_SMTP_TIMEOUT", "30")),
            ca_file=env.get("SEALBILL_SMTP_CA_FILE") or None,
        )
    except ValueError as exc:
        raise ConfigError(f"bad SMTP setting: {exc}") from exc


def dkim_config(env: Mapping[str, str] | None = None) -> DkimConfig | None:
    """The DKIM settings, or ``None`` when ``SEALBILL_DKIM_KEY`` is not set."""
    env = os.environ if env is None else env
    path = env.get("SEALBILL_DKIM_KEY")
    if not path:
        return None
    key_path = Path(path)
    if not key_path.is_file():
        raise ConfigError(f"SEALBILL_DKIM_KEY: no such file {key_path}")
    return DkimConfig(key_path=key_path, selector=env.get("SEALBILL_DKIM_SELECTOR", "sealbill"),
                      domain=env.get("SEALBILL_DKIM_DOMAIN") or None)
