"""``sealbill accounts balance|credit|refund``: a customer's credit (credit notes, manual
credits), where it was applied, and what was paid back."""

from __future__ import annotations

from typing import Annotated

import typer

from sealbill.app import balances as app_balances
from sealbill.cli.common import DbOption, JsonOption, OrgOption, console, emit_json
from sealbill.cli.operate import ByOption, KeyOption, by_ignored, call, context
from sealbill.domain.money import Money, format_plain

accounts_app = typer.Typer(help="Customer accounts: balance and credits.", no_args_is_help=True)


def register(accounts_group: typer.Typer) -> None:
    """Add ``balance``, ``credit`` and ``refund`` to the ``accounts`` group."""
    accounts_group.registered_commands.extend(accounts_app.registered_commands)


@accounts_app.command("balance")
def balance(
    account: Annotated[str, typer.Argument(help="Account reference.")],
    org: OrgOption,
    db: DbOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """The account's credit per currency, and its history (credits in, credit applied).

    Example: sealbill accounts balance C000042 --org acme --json
    """
    engine, actor, org_id = context(db, org, key, as_json)
    found = call(lambda: app_balances.show(engine, actor, org_id, account), as_json)
    by_currency, entries = found["balance_minor"], found["history"]
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
    key: KeyOption = None,
    actor: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give the account a manual credit; its next invoices apply it automatically (audited,
    the same use case as the refund's).

    Example: sealbill accounts credit C000042 --org acme --amount 25.00 --reason "goodwill for the
    outage"
    """
    by_ignored(actor)
    engine, who, org_id = context(db, org, key, as_json)
    done = call(lambda: app_balances.credit(engine, who, org_id, account, amount=amount,
                                            reason=reason, currency=currency), as_json)
    minor, cur = done["credited_minor"], done["currency"]
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
