"""``sealbill operators create``, ``sealbill keys create|list|revoke``, ``sealbill audit``.

The first operator and key are made here, by someone with the database (no key needed):
``sealbill operators create --email …`` then ``sealbill keys create --org … --operator …``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sealbill.app import audit, operators
from sealbill.cli.common import DbOption, JsonOption, OrgOption, console, emit_json, engine_for
from sealbill.cli.operate import KeyOption, actor_for, call, context, output

operators_app = typer.Typer(help="Operators: the people who run sealbill.",
                            no_args_is_help=True)
keys_app = typer.Typer(help="API keys (one organization, one role each; shown once).",
                       no_args_is_help=True)
audit_app = typer.Typer(help="The audit log of every change.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(operators_app, name="operators")
    root.add_typer(keys_app, name="keys")
    root.add_typer(audit_app, name="audit")


@operators_app.command("create")
def create_operator(
    email: Annotated[str, typer.Option(help="The operator's e-mail (their login).")],
    name: Annotated[str, typer.Option(help="Full name.")],
    password: Annotated[str, typer.Option(
        prompt=True, hide_input=True, confirmation_prompt=True,
        envvar="SEALBILL_OPERATOR_PASSWORD", help="At least 12 characters (prompted).")],
    db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False,
) -> None:
    """Create an operator (argon2 password hash); prints the TOTP secret once, to put in an
    authenticator app.

    Example: sealbill operators create --email alice@acme.example --name "Alice Martin"
    """
    engine = engine_for(db)
    from sealbill.store.migrate import upgrade

    upgrade(engine)
    actor = actor_for(engine, key, as_json)
    result = call(lambda: operators.create_operator(engine, actor, email, name, password),
                  as_json)
    if as_json:
        emit_json(result)
        return
    console.print(f"operator {result['email']} created", markup=False)
    console.print(f"TOTP secret (shown once): {result['totp_secret']}", markup=False)
    console.print(f"authenticator URI: {result['totp_uri']}", markup=False)


@operators_app.command("grant")
def grant(
    org: OrgOption,
    operator: Annotated[str, typer.Option(help="The operator's e-mail.")],
    role: Annotated[str, typer.Option(help="admin, billing, approver, auditor or "
                                      "read-only.")],
    db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False,
) -> None:
    """Give an operator a role in an organization, for signing in with password + TOTP.

    Example: sealbill operators grant --org acme --operator bob@acme.example --role approver
    """
    from sealbill.app import sessions

    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: sessions.grant(engine, actor, org_id, operator, role), as_json),
           as_json)


@keys_app.command("create")
def create_key(
    org: OrgOption,
    operator: Annotated[str, typer.Option(help="The operator's e-mail.")],
    role: Annotated[str, typer.Option(help="admin, billing, approver, auditor or "
                                      "read-only.")],
    label: Annotated[str, typer.Option(help="What the key is for.")] = "",
    db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False,
) -> None:
    """Create an API key for an operator in one organization with one role; the key is
    printed once and stored hashed.

    Example: sealbill keys create --org acme --operator alice@acme.example --role admin
    """
    engine, actor, org_id = context(db, org, key, as_json)
    result = call(lambda: operators.create_key(engine, actor, org_id, operator, role, label),
                  as_json)
    if as_json:
        emit_json(result)
        return
    console.print(f"key {result['prefix']} ({role}) for {operator}; store it now, it is not "
                  "shown again:", markup=False)
    console.print(result["key"], markup=False, highlight=False)


@keys_app.command("list")
def list_keys(org: OrgOption, db: DbOption = None, key: KeyOption = None,
              as_json: JsonOption = False) -> None:
    """List the organization's keys (prefixes only).

    Example: sealbill keys list --org acme
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: operators.list_keys(engine, actor, org_id), as_json), as_json)


@keys_app.command("revoke")
def revoke_key(prefix: str, org: OrgOption, db: DbOption = None, key: KeyOption = None,
               as_json: JsonOption = False) -> None:
    """Revoke a key by its prefix.

    Example: sealbill keys revoke sbk_3f9a0c1b2d4e --org acme
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: operators.revoke_key(engine, actor, org_id, prefix), as_json),
           as_json)


@audit_app.command("list")
def audit_list(
    org: OrgOption,
    action: Annotated[str | None, typer.Option(help="e.g. account.update")] = None,
    object_id: Annotated[str | None, typer.Option("--object")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    cursor: Annotated[str | None, typer.Option()] = None,
    db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False,
) -> None:
    """Audit entries (who, what, before/after, from which key), oldest first.

    Example: sealbill audit list --org acme --action run.approve --json
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: audit.entries(engine, actor, org_id, action=action,
                                      object_id=object_id, limit=limit, cursor=cursor),
                as_json), as_json,
           columns=("at", "actor", "api_key", "action", "object_id", "after"))
