"""One boundary: a hostile or malformed account, contact or usage value is refused the same way
by every door — the file import, the CLI command and the API route — naming the same field,
with the same message, and nothing is written; a tricky but valid record is accepted by all
three and stored the same.

The CLI runs in-process (Typer's CliRunner, ``--json``); the API is a real uvicorn server on
loopback. The CLI checks every argument before any command runs (``cli/arguments.py``): a value
with a control, bidi or zero-width character given *as an argument* is refused there, naming the
option that carries the field (``--name``, ``--event-id``); the account cases go through
``accounts create -f FILE`` so that the CLI reaches the model like the other doors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from sealbill.app import accounts, apply, operators, organizations
from sealbill.app.context import local_actor
from sealbill.cli import app as cli
from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade
from sealbill.store.schema import accounts as accounts_table
from sealbill.store.schema import contacts as contacts_table
from sealbill.store.schema import usage_events
from tests.e2e.catalog_fixture import ACCOUNTS, CATALOG_YAML, ORG
from tests.support.api_server import serving

VALID = {"reference": "N0001", "name": "Nouveau SA", "address_line1": "1 rue A",
         "postcode": "75011", "city": "Paris", "country": "FR"}
PAN = "4111 1111 1111 1111"
IBAN = "FR76 3000 6000 0112 3456 7890 189"
_FIELD = re.compile(r"field '([^']+)': (.*)$")


@dataclass
class World:
    db: str
    base: str
    headers: dict[str, str]
    folder: Path
    engine: sa.engine.Engine
    account_id: str  # C001's public id: the API names accounts by it


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Organization ``acme`` with the quick-start catalog (``api_calls``: sum, no negative
    values) and account C001; an admin key for the API."""
    folder = tmp_path_factory.mktemp("one-boundary")
    db = f"sqlite:///{folder / 'sealbill.sqlite'}"
    engine = create_engine(db)
    upgrade(engine)
    root = local_actor()
    organizations.create(engine, root, ORG)
    operators.create_operator(engine, root, "alice@acme.example", "Alice",
                              "correct horse battery")
    key = operators.create_key(engine, root, 1, "alice@acme.example", "admin")["key"]
    apply.apply(engine, root, 1, CATALOG_YAML, dry_run=False)
    account_id = accounts.create(engine, root, 1, ACCOUNTS[0])["id"]
    with serving(engine) as base:
        yield World(db, base, {"Authorization": f"Bearer {key}"}, folder, engine, account_id)
    engine.dispose()


def _counts(world: World) -> tuple[int, ...]:
    with world.engine.begin() as conn:
        return tuple(int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
                     for t in (accounts_table, contacts_table, usage_events))


def _cli(*args: str) -> tuple[int, list[tuple[str, str]]]:
    """Exit code and (field, message) of each problem the CLI named."""
    result = CliRunner().invoke(cli, list(args))
    refused = re.search(r"Invalid value for '([^']+)': (.*)", " ".join(result.output.split()))
    if refused:  # the root command's argument check
        return result.exit_code, [(refused.group(1), refused.group(2))]
    answer = json.loads(result.stdout)
    details = answer.get("details") or []
    return result.exit_code, [_split(item) for item in details]


def _split(line: str) -> tuple[str, str]:
    found = _FIELD.search(line)
    assert found, line
    return found.group(1), found.group(2)


def _api(world: World, path: str, body: dict[str, Any]) -> tuple[int, list[tuple[str, str]]]:
    answer = httpx.post(f"{world.base}{path}", json=body, headers=world.headers, timeout=30)
    errors = answer.json().get("errors", []) if answer.status_code >= 400 else []
    return answer.status_code, [(e["field"], e["message"]) for e in errors]


def _import_accounts(world: World, records: list[dict[str, Any]]) -> tuple[
        int, list[tuple[str, str]]]:
    path = world.folder / "accounts.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return _cli("import", "accounts", str(path), "--org", "acme", "--db", world.db, "--json")


# (field, value): each is refused by AccountIn whichever door it came in by.
ACCOUNT_CASES = [
    ("name", "Client\x07 SA"),                      # control character (BEL)
    ("name", "Client \u202eAS"),                     # bidirectional override
    ("city", "Pa\u200bris"),                         # zero-width space
    ("address_line2", "B\u2066t 3"),                  # bidi isolate
    ("name", f"Client {PAN}"),                       # a card number in a name
    ("address_line1", f"1 rue A {IBAN}"),           # an IBAN in an address line
    ("address_line2", IBAN.replace(" ", "-")),       # ... in the second line, dashes
    ("country", "ZZ"),                               # not an ISO 3166 code
    ("postcode", "7" * 21),                          # too long for its column
    ("name", "N" * 201),
    ("city", "C" * 101),
    ("vat_id", "FR00123456789"),                     # bad VAT id
    ("payment_display", "Visa 4242 4242 42"),        # not masked
    ("reference", "N 0001/2"),                       # not an identifier
    ("is_business", "maybe"),
    ("electronic_address", "billing@a, b@c.example"),  # two addresses
]


@pytest.mark.parametrize(("field", "value"), ACCOUNT_CASES,
                         ids=[f"{f}-{i}" for i, (f, _) in enumerate(ACCOUNT_CASES)])
def test_an_account_value_is_refused_alike_by_the_import_the_cli_and_the_api(
        world: World, field: str, value: str) -> None:
    record = {**VALID, field: value}
    before = _counts(world)
    spec = world.folder / "account.json"
    spec.write_text(json.dumps(record), encoding="utf-8")

    imported = _import_accounts(world, [record])
    created = _cli("accounts", "create", record["reference"], "-f", str(spec), "--org", "acme",
                   "--db", world.db, "--json")
    posted = _api(world, "/v1/accounts", record)

    assert (imported[0], created[0], posted[0]) == (2, 2, 422)
    assert imported[1] == created[1] == posted[1]
    assert [name for name, _ in posted[1]] == [field]
    assert _counts(world) == before


# (field, value, the option the CLI names when its argument check refuses the value first)
CONTACT_CASES = [
    ("name", "Marie \u202eDupont", "--name"),
    ("name", "Marie\x1b[31m", "--name"),
    ("name", f"Marie {PAN}", "--name"),
    ("name", f"Marie {IBAN}", "--name"),
    ("name", "M" * 201, None),
    ("email", "ap@client.fr, cfo@client.fr", None),
    ("email", "not-an-address", None),
    ("role", "owner", None),
]


@pytest.mark.parametrize(("field", "value", "option"), CONTACT_CASES,
                         ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(CONTACT_CASES)])
def test_a_contact_value_is_refused_alike_by_the_import_the_cli_and_the_api(
        world: World, field: str, value: str, option: str | None) -> None:
    contact = {"email": "ap@client-neuf.fr", "name": "Marie", "role": "billing", field: value}
    before = _counts(world)

    imported = _import_accounts(world, [{**VALID, "contacts": [contact]}])
    args = ["contacts", "add", contact["email"], "--account", "C001", "--role",
            contact["role"], "--name", contact["name"], "--org", "acme", "--db", world.db,
            "--json"]
    added = _cli(*args)
    posted = _api(world, f"/v1/accounts/{world.account_id}/contacts", contact)

    assert (imported[0], added[0], posted[0]) == (2, 2, 422)
    assert [(f.removeprefix("contacts[0]."), m) for f, m in imported[1]] == posted[1]
    assert [name for name, _ in posted[1]] == [field]
    if option is None:
        assert added[1] == posted[1]
    else:  # the CLI refused the argument before the command ran, naming its option
        assert [name for name, _ in added[1]] == [option]
    assert _counts(world) == before


EVENT = {"event_id": "e-1", "account": "C001", "metric": "api_calls",
         "timestamp": "2026-10-05T10:00:00Z", "value": "5", "properties": {}}
# (API field, value, field named by the file when it differs, option named by the CLI's
# argument check when it refuses first)
USAGE_CASES: list[tuple[str, Any, str | None, str | None]] = [
    ("value", "1e400", None, None),
    ("value", "1" * 38, None, None),
    ("value", "0.0000000000001", None, None),        # 13 decimal places
    ("value", "-5", None, None),                       # api_calls does not allow negatives
    ("value", None, None, None),                       # a sum needs a value
    ("event_id", "e" * 129, None, None),
    ("event_id", "e-\u202e1", None, "--event-id"),
    ("account", "C0\x0701", "account_reference", "--account"),
    ("timestamp", "2026-10-05T10:00:00", None, None),  # no offset
    ("properties", {"region": "eu\u200b"}, "properties.region", None),
    ("properties", {f"p{i}": "x" for i in range(33)}, None, None),
]


def _usage_file(world: World, event: dict[str, Any]) -> Path:
    row = {"event_id": event["event_id"], "account_reference": event["account"],
           "metric_code": event["metric"], "timestamp": event["timestamp"],
           "value": event["value"], "properties": event["properties"]}
    path = world.folder / "usage.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    return path


def _usage_cli(world: World, event: dict[str, Any]) -> tuple[int, list[tuple[str, str]]]:
    args = ["usage", "record", "--event-id", event["event_id"], "--account", event["account"],
            "--metric", event["metric"], "--timestamp", event["timestamp"],
            "--properties", json.dumps(event["properties"]),  # JSON escapes: no raw character
            "--org", "acme", "--db", world.db, "--json"]
    if event["value"] is not None:
        args += ["--value", event["value"]]
    return _cli(*args)


def _file_problems(world: World, event: dict[str, Any]) -> tuple[int, list[tuple[str, str]]]:
    result = CliRunner().invoke(cli, ["import", "usage", str(_usage_file(world, event)),
                                      "--org", "acme", "--db", world.db, "--json"])
    details = json.loads(result.stdout).get("details") or []
    # "usage.jsonl: line 1: value: at most 15 digits ..."
    return result.exit_code, [tuple(item.split(": ", 3)[2:4]) for item in details]  # type: ignore[misc]


@pytest.mark.parametrize(("field", "value", "file_field", "option"), USAGE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(USAGE_CASES)])
def test_a_usage_value_is_refused_alike_by_the_import_the_cli_and_the_api(
        world: World, field: str, value: Any, file_field: str | None,
        option: str | None) -> None:
    event = {**EVENT, field: value}
    before = _counts(world)

    imported = _file_problems(world, event)
    recorded = _usage_cli(world, event)
    body = {k: v for k, v in event.items() if v is not None}
    posted = _api(world, "/v1/usage", body if field == "account" else {
        **body, "account": world.account_id})

    assert (imported[0], recorded[0], posted[0]) == (2, 2, 422)
    named = field if field != "properties" or file_field is None else file_field
    assert [name for name, _ in posted[1]] == [named]
    assert [name for name, _ in imported[1]] == [file_field or named]
    assert [name for name, _ in recorded[1]] == [option or named]
    if option is None:
        assert recorded[1] == posted[1]
    assert _counts(world) == before


def test_a_tricky_but_valid_account_is_accepted_alike_and_stored_the_same(
        world: World) -> None:
    """Decomposed accents (stored in NFC), a lower-case country, 14 digits after "SIRET",
    a masked card: accepted by the three doors, stored identically."""
    tricky = {"name": "Ame\u0301lie SARL", "address_line1": "SIRET 73282932000074",
              "address_line2": "", "postcode": "75011", "city": "Paris", "country": "fr",
              "payment_display": "Visa •••• 4242", "locale": "EN", "internal_test": "no"}
    spec = world.folder / "tricky.json"
    spec.write_text(json.dumps({**tricky, "reference": "T-CLI"}), encoding="utf-8")

    assert _import_accounts(world, [{**tricky, "reference": "T-FILE"}])[0] == 0
    assert _cli("accounts", "create", "T-CLI", "-f", str(spec), "--org", "acme",
                "--db", world.db, "--json")[0] == 0
    answer = httpx.post(f"{world.base}/v1/accounts", headers=world.headers, timeout=30,
                        json={**tricky, "reference": "T-API"})
    assert answer.status_code == 201, answer.text

    columns = [accounts_table.c[name] for name in (
        "name", "address_line1", "address_line2", "country", "payment_display", "locale",
        "is_internal_test", "is_business", "vat_id", "currency")]
    with world.engine.begin() as conn:
        rows = {r[0]: tuple(r[1:]) for r in conn.execute(sa.select(
            accounts_table.c.reference, *columns).where(
            accounts_table.c.reference.in_(["T-FILE", "T-CLI", "T-API"])))}
    assert rows["T-FILE"] == rows["T-CLI"] == rows["T-API"]
    assert rows["T-API"][:4] == ("Am\u00e9lie SARL", "SIRET 73282932000074", "", "FR")
