"""SMTP and DKIM settings, read from the environment (never from the database).

``SEALBILL_SMTP_HOST`` (127.0.0.1), ``SEALBILL_SMTP_PORT`` (2525), ``SEALBILL_SMTP_SECURITY``
(``none`` | ``starttls`` | ``ssl``), ``SEALBILL_SMTP_USER`` / ``SEALBILL_SMTP_PASSWORD`` (AUTH,
only over TLS unless the host is loopback), ``SEALBILL_SMTP_TIMEOUT`` (seconds, 30),
``SEALBILL_SMTP_CA_FILE`` (extra CA bundle for a private relay);
``SEALBILL_DKIM_KEY`` (PEM path), ``SEALBILL_DKIM_SELECTOR``, ``SEALBILL_DKIM_DOMAIN``
(defaults to the organization's sender domain). Without a key nothing is sent unless
``SEALBILL_DKIM=off`` says, explicitly, that unsigned mail is intended (a relay that signs).
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


UNSIGNED_WORDS = ("off", "unsigned", "none")


def unsigned_allowed(env: Mapping[str, str] | None = None) -> bool:
    """Whether the configuration explicitly allows unsigned mail (``SEALBILL_DKIM=off``)."""
    env = os.environ if env is None else env
    return env.get("SEALBILL_DKIM", "").strip().lower() in UNSIGNED_WORDS


def signing_summary(org_domain: str, env: Mapping[str, str] | None = None) -> str:
    """One line saying how mail will be signed, or that it will be refused."""
    try:
        cfg = dkim_config(env)
    except ConfigError as exc:
        return f"DKIM: REFUSED — {exc}"
    if cfg is not None:
        return f"DKIM: signed (selector {cfg.selector}, domain {cfg.domain or org_domain})"
    if unsigned_allowed(env):
        return "DKIM: UNSIGNED — SEALBILL_DKIM=off (the relay must sign)"
    return ("DKIM: REFUSED — no key: set SEALBILL_DKIM_KEY (publish `sealbill dkim "
            "dns-record`), or SEALBILL_DKIM=off to send unsigned on purpose")
