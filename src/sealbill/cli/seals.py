"""Seal commands: ``sealing-keys show|rotate``, ``contacts verify-log|verify-seals``.

Exit codes: 0 done (or the history is intact); 1 a key is missing, or the history does not
verify; 2 bad usage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.engine import Engine

from sealbill import keys
from sealbill.cli.common import (
    DbOption,
    JsonOption,
    OrgOption,
    console,
    emit_json,
    engine_for,
    fail,
    org_id_for,
)
from sealbill.store.parties import contact_log, seals

keys_app = typer.Typer(help="The keyring that seals entitlement facts (kept outside the "
                            "database).", no_args_is_help=True)
KeyringOption = Annotated[Path | None, typer.Option(
    "--keyring-dir", envvar="SEALBILL_KEYRING_DIR",
    help="Where keyring.json and the checkpoints live (default: the files directory).")]


def register(app: typer.Typer) -> None:
    from sealbill.cli.delivery import contacts_app

    app.add_typer(keys_app, name="sealing-keys")
    contacts_app.command("verify-log")(verify_log)
    contacts_app.command("verify-seals")(verify_seals)


def _bound(db: str | None, directory: Path | None, as_json: bool) -> Engine:
    engine = engine_for(db)
    found = keys.load(keys.keyring_dir(directory, db_url=db))
    if found is not None:
        keys.use(engine, found)
    return engine


@keys_app.command("show")
def keys_show(keyring_dir: KeyringOption = None, db: DbOption = None,
              as_json: JsonOption = False) -> None:
    """The key ids of the keyring and the active one (never the keys).

    Example: sealbill sealing-keys show --db sqlite:///billing.sqlite
    """
    found = keys.load(keys.keyring_dir(keyring_dir, db_url=db))
    if found is None:
        fail("no sealing key (SEALBILL_SECRET_KEY, keyring.json or secret.key)",
             as_json=as_json)
    payload = keys.describe(found)
    emit_json({"ok": True, **payload}) if as_json else console.print(payload, markup=False)


@keys_app.command("rotate")
def keys_rotate(db: DbOption = None, keyring_dir: KeyringOption = None,
                as_json: JsonOption = False) -> None:
    """Add a new active key (older keys stay for verification), then re-seal with it every
    organization, contact and link whose seal verifies now; rows that do not verify keep
    their seal and are counted as not valid (never laundered).

    Example: sealbill sealing-keys rotate --db sqlite:///billing.sqlite
    """
    directory = keys.keyring_dir(keyring_dir, db_url=db)
    engine = engine_for(db)
    try:
        rotated, previous = keys.rotate(directory)
    except keys.KeyMissing as exc:
        fail(str(exc), as_json=as_json)
    keys.use(engine, rotated)
    with engine.begin() as conn:
        counts = seals.reseal_all(conn)
    payload: dict[str, Any] = {"ok": True, "previous": previous, "active": rotated.keys.active,
                               "resealed": counts}
    emit_json(payload) if as_json else console.print(payload, markup=False)


def verify_log(org: OrgOption, db: DbOption = None, keyring_dir: KeyringOption = None,
               as_json: JsonOption = False) -> None:
    """Check the sealed, hash-chained contact history: edited, forged, unchained, deleted,
    re-inserted events and a cut tail are reported.

    Example: sealbill contacts verify-log --org acme --json
    """
    engine = _bound(db, keyring_dir, as_json)
    org_id = org_id_for(engine, org, as_json)
    try:
        with engine.begin() as conn:
            report = contact_log.verify(conn, org_id)
    except keys.KeyMissing as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json({"ok": report.ok, "events": report.rows, "problems": report.problems})
    elif report.ok:
        console.print(f"contact history intact: {report.rows} events", markup=False)
    else:
        fail(f"contact history damaged: {len(report.problems)} problem(s)",
             details=[f"seq {p.get('seq')}: {p['problem']} — {p['detail']}"
                      for p in report.problems])
    raise typer.Exit(0 if report.ok else 1)


def verify_seals(org: OrgOption, db: DbOption = None, keyring_dir: KeyringOption = None,
                 as_json: JsonOption = False) -> None:
    """List every organization, contact and link row whose seal does not verify (changed
    outside sealbill, sealed with an unknown key, or never sealed): what the guard refuses.

    Example: sealbill contacts verify-seals --org acme
    """
    engine = _bound(db, keyring_dir, as_json)
    org_id = org_id_for(engine, org, as_json)
    try:
        with engine.begin() as conn:
            found = seals.audit(conn, org_id)
    except keys.KeyMissing as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json({"ok": not found, "problems": found})
    elif not found:
        console.print("every organization, contact and link row matches its seal", markup=False)
    else:
        fail(f"{len(found)} row(s) do not match their seal",
             details=[", ".join(f"{k}={v}" for k, v in p.items()) for p in found])
    raise typer.Exit(0 if not found else 1)
