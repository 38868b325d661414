"""``sealbill contacts add|change-address|set-role|unlink|list|show|confirm-operator``
(``verify`` and ``confirm`` by code are in ``cli/delivery.py``)."""

from __future__ import annotations

from typing import Annotated

import typer

from sealbill.app import contacts
from sealbill.cli.common import DbOption, JsonOption, OrgOption, console, emit_json
from sealbill.cli.operate import KeyOption, call, context, output

AccountOpt = Annotated[str, typer.Option("--account", help="Account reference or acc_ id.")]
Role = Annotated[str, typer.Option(help="billing, admin or technical.")]


def register(contacts_app: typer.Typer) -> None:
    for name, fn in (("add", add), ("change-address", change_address), ("set-role", set_role),
                     ("unlink", unlink), ("list", list_contacts), ("show", show),
                     ("vouch", vouch)):
        contacts_app.command(name)(fn)


def add(email: str, org: OrgOption, account: AccountOpt, role: Role = "billing",
        name: Annotated[str, typer.Option()] = "", db: DbOption = None, key: KeyOption = None,
        as_json: JsonOption = False) -> None:
    """Link a contact to an account with a role; pending until verified (nothing is sent to
    it before).

    Example: sealbill contacts add ap@client.example --account C001 --org acme
    """
    engine, actor, org_id = context(db, org, key, as_json)
    data = {"email": email, "role": role, "name": name}
    output(call(lambda: contacts.add(engine, actor, org_id, account, data), as_json), as_json)


def change_address(contact: str, new_email: str, org: OrgOption, db: DbOption = None,
                   key: KeyOption = None, as_json: JsonOption = False) -> None:
    """Change a contact's address: its links return to pending (re-verification required).

    Example: sealbill contacts change-address ap@client.example ap2@client.example --org acme
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: contacts.change_address(engine, actor, org_id, contact, new_email),
                as_json), as_json)


def set_role(contact: str, role: str, org: OrgOption, account: AccountOpt,
             from_role: Annotated[str | None, typer.Option("--from")] = None,
             db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False) -> None:
    """Move a contact's link on an account to another role (the new link is pending).

    Example: sealbill contacts set-role ap@client.example billing --from admin --account C001
    --org acme
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: contacts.set_role(engine, actor, org_id, contact, account,
                                          role, from_role=from_role),  # type: ignore[arg-type]
                as_json), as_json)


def unlink(contact: str, org: OrgOption, account: AccountOpt,
           role: Annotated[str | None, typer.Option()] = None, db: DbOption = None,
           key: KeyOption = None, as_json: JsonOption = False) -> None:
    """Revoke a contact's links on an account (kept in its history).

    Example: sealbill contacts unlink ap@client.example --account C001 --org acme
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: contacts.unlink(engine, actor, org_id, contact, account,
                                        role), as_json), as_json)  # type: ignore[arg-type]


def vouch(contact: str, org: OrgOption, account: AccountOpt,
          reason: Annotated[str, typer.Option(help="How the address was checked.")],
          db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False) -> None:
    """Verify a billing contact by an operator's word, with a recorded reason (the code mail
    is `sealbill contacts verify`).

    Example: sealbill contacts vouch ap@client.example --account C001 --org acme
    --reason "confirmed by phone with the CFO"
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: contacts.confirm_by_operator(engine, actor, org_id, contact, account,
                                                     reason), as_json), as_json)


def list_contacts(org: OrgOption,
                  account: Annotated[str | None, typer.Option("--account")] = None,
                  history: Annotated[bool, typer.Option("--history")] = False,
                  db: DbOption = None, key: KeyOption = None,
                  as_json: JsonOption = False) -> None:
    """List contacts with each link's verification state (and --history).

    Example: sealbill contacts list --account C001 --org acme --history
    """
    engine, actor, org_id = context(db, org, key, as_json)
    result = call(lambda: contacts.list_contacts(engine, actor, org_id, account_ref=account,
                                                 history=history), as_json)
    if as_json:
        emit_json(result)
        return
    rows = [{"email": c["email"], "account": link["account"], "role": link["role"],
             "status": link["status"], "method": link["verification_method"],
             "changed": link["changed_at"], "by": link["changed_by"]}
            for c in result for link in c["links"]]
    output(rows, False)
    for c in result if history else []:
        console.print(f"history of {c['email']}:", markup=False)
        for e in c["history"]:
            console.print(f"  {e['at']} {e['event']} {e['account'] or ''} {e['role'] or ''} "
                          f"by {e['actor']} {e['reason'] or ''}", markup=False)


def show(contact: str, org: OrgOption, db: DbOption = None, key: KeyOption = None,
         as_json: JsonOption = False) -> None:
    """Show a contact (address or con_ id), its links and full history.

    Example: sealbill contacts show ap@client.example --org acme --json
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: contacts.show(engine, actor, org_id, contact), as_json), as_json)
