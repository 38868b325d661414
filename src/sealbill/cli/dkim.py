"""``sealbill dkim dns-record``: the DNS TXT record that publishes the DKIM public key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from sealbill.cli.common import JsonOption, emit_json, usage_error
from sealbill.mail.dkim import DkimKey, DkimSigner

dkim_app = typer.Typer(help="DKIM signing key.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(dkim_app, name="dkim")


def txt_strings(value: str, size: int = 255) -> list[str]:
    """A TXT value as the quoted strings DNS needs (each at most 255 characters)."""
    return [value[start:start + size] for start in range(0, len(value), size)]


@dkim_app.command("dns-record")
def dns_record(
    key: Annotated[Path | None, typer.Option(help="Private key (PEM); default "
                                             "SEALBILL_DKIM_KEY.")] = None,
    selector: Annotated[str | None, typer.Option(help="Default SEALBILL_DKIM_SELECTOR or "
                                                 "'sealbill'.")] = None,
    domain: Annotated[str | None, typer.Option(help="Signing domain; default "
                                               "SEALBILL_DKIM_DOMAIN.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print the TXT record to publish at <selector>._domainkey.<domain> (zone-file form).

    Example: sealbill dkim dns-record --key dkim.pem --selector s2026 --domain billing.acme.example
    """
    path = key or (Path(os.environ["SEALBILL_DKIM_KEY"]) if os.environ.get("SEALBILL_DKIM_KEY")
                   else None)
    if path is None:
        usage_error("no key: pass --key PATH or set SEALBILL_DKIM_KEY", as_json=as_json)
    domain = domain or os.environ.get("SEALBILL_DKIM_DOMAIN")
    if not domain:
        usage_error("no domain: pass --domain (your sender domain) or set "
                    "SEALBILL_DKIM_DOMAIN", as_json=as_json)
    selector = selector or os.environ.get("SEALBILL_DKIM_SELECTOR") or "sealbill"
    try:
        value = DkimSigner(DkimKey(selector, domain, path.read_bytes())).dns_txt_record()
    except (OSError, ValueError, TypeError) as exc:
        usage_error(f"--key {path}: not a readable RSA private key ({exc})", as_json=as_json)
    name = f"{selector}._domainkey.{domain.rstrip('.')}."
    if as_json:
        emit_json({"name": name, "type": "TXT", "value": value})
        return
    quoted = " ".join(f'"{part}"' for part in txt_strings(value))
    typer.echo(f"{name} 3600 IN TXT ( {quoted} )")
