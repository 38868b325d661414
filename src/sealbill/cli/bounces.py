"""``sealbill bounces import FILE…|--maildir DIR`` and ``sealbill contacts clear-bounce``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sealbill.app import bounces
from sealbill.cli.common import DbOption, JsonOption, OrgOption, console, emit_json, usage_error
from sealbill.cli.delivery import contacts_app
from sealbill.cli.operate import KeyOption, call, context, output

bounces_app = typer.Typer(help="Bounces mailed back after the send (DSNs, RFC 3464).",
                          no_args_is_help=True)
MAX_MAIL_BYTES = 20 * 1024 * 1024


def register(app: typer.Typer) -> None:
    app.add_typer(bounces_app, name="bounces")
    contacts_app.command("clear-bounce")(clear_bounce)


def _mails(files: list[Path], maildir: Path | None, as_json: bool) -> list[tuple[str, bytes]]:
    """(name, bytes) of each mail: the files named, then a maildir's ``new`` and ``cur``
    (or the folder's own files when it has neither)."""
    paths = list(files)
    if maildir is not None:
        if not maildir.is_dir():
            usage_error(f"--maildir {maildir}: not a folder", as_json=as_json)
        folders = [maildir / "new", maildir / "cur"]
        folders = [f for f in folders if f.is_dir()] or [maildir]
        paths += sorted(p for f in folders for p in f.iterdir() if p.is_file())
    if not paths:
        usage_error("name DSN files or --maildir DIR", as_json=as_json)
    mails = []
    for path in paths:
        try:
            if path.stat().st_size > MAX_MAIL_BYTES:
                usage_error(f"{path}: larger than {MAX_MAIL_BYTES} bytes, not a DSN",
                            as_json=as_json)
            mails.append((str(path), path.read_bytes()))
        except OSError as exc:
            usage_error(f"{path}: cannot be read ({exc.strerror})", as_json=as_json)
    return mails


@bounces_app.command("import")
def import_command(
    org: OrgOption,
    files: Annotated[list[Path] | None, typer.Argument(help="Mail files (one DSN each).")]
    = None,
    maildir: Annotated[Path | None, typer.Option(help="A maildir (its new/ and cur/).")]
    = None,
    db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False,
) -> None:
    """Read delivery status notifications: a permanent failure (Action: failed, 5.x.x) of an
    address a message was sent to flags that contact as bounced; a delay (4.x.x) is recorded
    only; a DSN for an unknown message or address changes nothing and is listed.

    Example: sealbill bounces import --maildir ~/Maildir/.bounces --org acme
    """
    mails = _mails(files or [], maildir, as_json)
    engine, actor, org_id = context(db, org, key, as_json)
    result = call(lambda: bounces.import_dsns(engine, actor, org_id, mails), as_json)
    if as_json:
        emit_json(result)
        return
    output(result["results"], as_json, columns=["source", "invoice", "recipient", "action",
                                                "status", "result", "detail"])
    console.print(f"{result['mails']} mail(s): {result['bounced']} bounced, "
                  f"{result['delayed_recorded']} delayed (recorded), "
                  f"{result['unknown_message']} for an unknown message, "
                  f"{result['not_sent_to_that_address']} for an address not sent to, "
                  f"{result['not_a_dsn']} not a DSN", highlight=False)


def clear_bounce(contact: str, org: OrgOption,
                 reason: Annotated[str, typer.Option(help="Why (recorded in the contact's "
                                                     "history and the audit log).")],
                 db: DbOption = None, key: KeyOption = None,
                 as_json: JsonOption = False) -> None:
    """Clear a contact's bounced flag once the address is fixed; later plans send to it again.

    Example: sealbill contacts clear-bounce ap@client.example --org acme --reason "mailbox
    restored (phone call)"
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: bounces.clear_bounce(engine, actor, org_id, contact,
                                             {"reason": reason}), as_json), as_json)
