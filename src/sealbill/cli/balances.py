"""``sealbill accounts balance|credit|refund``: a customer's credit (credit notes, manual
credits), where it was applied, and what was paid back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy.engine import Engine

from sealbill.app import balances as app_balances
from sealbill.cli.common import (
    ActorOption,
    DbOption,
    JsonOption,
    OrgOption,
    console,
    emit_json,
    engine_for,
    fail,
    org_id_for,
    usage_error,
)
from sealbill.cli.operate import KeyOption, call, context
from sealbill.domain.money import Money, MoneyError, format_plain, parse_decimal, to_minor
from sealbill.store.billing import balances
from sealbill.store.parties import records as parties

accounts_app = typer.Typer(help="Customer accounts: balance and credits.", no_args_is_help=True)


def register(accounts_group: typer.Typer) -> None:
    """Add ``balance``, ``credit`` and ``refund`` to the ``accounts`` group."""
    accounts_group.registered_commands.extend(accounts_app.registered_commands)


def _account_id(engine: Engine, org_id: int, reference: str, as_json: bool) -> int:
    with engine.begin() as conn:
        found = parties.account_ids_by_reference(conn, org_id).get(reference)
    if found is None:
        fail(f"account {reference!r} not found", as_json=as_json)
    return int(found)


@accounts_app.command("balance")
def balance(
    account: Annotated[str, typer.Argument(help="Account reference.")],
    org: OrgOption,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The account's credit per currency, and its history (credits in, credit applied).

    Example: sealbill accounts balance C000042 --org acme --json
    """
    engine = engine_for(db)
    org_id = org_id_for(engine, org, as_json)
    account_id = _account_id(engine, org_id, account, as_json)
    with engine.begin() as conn:
        totals = balances.balances(conn, org_id, [account_id])
        entries = balances.history(conn, org_id, account_id)
    by_currency = {currency: total for (_, currency), total in sorted(totals.items())}
    if as_json:
        emit_json({"ok": True, "account": account, "balance_minor": by_currency,
                   "history": entries})
        return
    if not by_currency:
        console.print(f"{account}: no credit")
    for currency, total in by_currency.items():
        console.print(f"{account}: credit {format_plain(Money(total, currency))} {currency}")
    for e in entries:
        amount = format_plain(Money(e["amount_minor"], e["currency"]))
        console.print(f"  {e['created_at']:%Y-%m-%d}  {e['kind']:<11} {amount:>12} "
                      f"{e['currency']}  {e['reason']}", markup=False, highlight=False)


@accounts_app.command("credit")
def credit(
    account: Annotated[str, typer.Argument(help="Account reference.")],
    org: OrgOption,
    amount: Annotated[str, typer.Option(help="Credit in major units, e.g. 25.00.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the history).")],
    currency: Annotated[str | None, typer.Option(help="Default: the account's.")] = None,
    db: DbOption = None,
    actor: ActorOption = "operator",
    as_json: JsonOption = False,
) -> None:
    """Give the account a manual credit; its next invoices apply it automatically.

    Example: sealbill accounts credit C000042 --org acme --amount 25.00 --reason "goodwill for the
    outage"
    """
    engine = engine_for(db)
    org_id = org_id_for(engine, org, as_json)
    account_id = _account_id(engine, org_id, account, as_json)
    with engine.begin() as conn:
        cur = currency or str(parties.account(conn, org_id, account_id)["currency"])
    try:
        value = parse_decimal(amount, field="amount")
        minor = to_minor(value, cur)
    except MoneyError as exc:
        usage_error(f"--amount: {exc}", as_json=as_json)
    if minor <= 0 or Money(minor, cur).major != value:
        usage_error(f"--amount: a positive amount in whole {cur} minor units, got {amount}",
                    as_json=as_json)
    with engine.begin() as conn:
        balances.add_entry(conn, org_id, account_id, cur, minor, kind="manual", reason=reason,
                           actor=actor, at=datetime.now(UTC))
    if as_json:
        emit_json({"ok": True, "account": account, "credited_minor": minor, "currency": cur})
    else:
        console.print(f"{account}: credited {format_plain(Money(minor, cur))} {cur}")


@accounts_app.command("refund")
def refund(
    account: Annotated[str, typer.Argument(help="Account reference (or acc_… id).")],
    amount: Annotated[str, typer.Argument(help="Amount paid back, in major units: 10.00.")],
    org: OrgOption,
    reason: Annotated[str, typer.Option(help="Why (kept in the history).")],
    currency: Annotated[str | None, typer.Option(help="Default: the account's.")] = None,
    db: DbOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a refund of the account's credit (never more than the credit there is).

    Example: sealbill accounts refund C000042 10.00 --org acme --reason "paid back by transfer"
    """
    engine, actor, org_id = context(db, org, key, as_json)
    result = call(lambda: app_balances.refund(engine, actor, org_id, account, amount=amount,
                                              reason=reason, currency=currency), as_json)
    if as_json:
        emit_json({"ok": True, **result})
        return
    cur = result["currency"]
    console.print(f"{result['account']}: refunded "
                  f"{format_plain(Money(result['refunded_minor'], cur))} {cur}; credit left "
                  f"{format_plain(Money(result['balance_minor'], cur))} {cur}")
