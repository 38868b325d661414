"""Containment on both databases: the kill switch at opening, rotation of ids and tokens."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from sealbill.pipeline.incident import actions as pipeline
from sealbill.store.delivery import switches
from sealbill.store.incident import incidents as store
from sealbill.store.parties import records as parties
from sealbill.store.parties import verification
from tests.integration.incident.world import at, swapped_world

KEY = b"k" * 32


def test_opening_with_pause_sending_stops_the_organizations_sending_and_says_so(
        any_engine: Engine) -> None:
    world = swapped_world(any_engine)
    other = swapped_world(any_engine, "other")

    incident_id = pipeline.open_incident(any_engine, world.org_id, title="leak",
                                         aware_at=at(60), scope=pipeline.Scope(),
                                         actor="oncall", pause=True)

    with any_engine.connect() as conn:
        assert switches.is_paused(conn, world.org_id)
        assert not switches.is_paused(conn, other.org_id)
        assert "incident" in str(switches.state(conn, world.org_id)["reason"])
        timeline = [e["event"] for e in store.events(conn, world.org_id, incident_id)]
    assert timeline == ["opened", "sending_paused"]
    taken, _ = pipeline.dossier(any_engine, world.org_id, incident_id).measures("en")
    assert taken and taken[0].startswith("sending halted for the organization (kill switch)")


def test_opening_without_pause_leaves_sending_alone(any_engine: Engine) -> None:
    world = swapped_world(any_engine)
    pipeline.open_incident(any_engine, world.org_id, title="suspicion", aware_at=at(60),
                           scope=pipeline.Scope(), actor="oncall")

    with any_engine.connect() as conn:
        assert not switches.is_paused(conn, world.org_id)


def test_rotation_retires_the_affected_ids_and_revokes_their_outstanding_codes(
        any_engine: Engine) -> None:
    world = swapped_world(any_engine)
    affected, untouched = world.accounts["ACC-1"], world.accounts["ACC-3"]
    with any_engine.begin() as conn:
        old_ids = {ref: parties.account(conn, world.org_id, world.accounts[ref])["public_id"]
                   for ref in ("ACC-1", "ACC-2", "ACC-3")}
        code_affected, _ = verification.issue(conn, world.org_id, world.contacts["bob@two.test"],
                                              affected, KEY)
        code_untouched, _ = verification.issue(conn, world.org_id,
                                               world.contacts["cat@three.test"], untouched, KEY)
    incident_id = pipeline.open_incident(any_engine, world.org_id, title="swap",
                                         aware_at=at(60), scope=pipeline.Scope(),
                                         actor="oncall")

    rotation = pipeline.rotate(any_engine, world.org_id, incident_id, actor="oncall")

    assert sorted(a["reference"] for a in rotation.accounts) == ["ACC-1", "ACC-2"]
    assert rotation.tokens_revoked == 1
    with any_engine.begin() as conn:
        for ref in ("ACC-1", "ACC-2"):
            old = parties.resolve_public_id(conn, world.org_id, old_ids[ref])
            assert old.gone and old.account_id is None
            new_id = parties.account(conn, world.org_id, world.accounts[ref])["public_id"]
            assert new_id != old_ids[ref]
            assert parties.resolve_public_id(conn, world.org_id, new_id).account_id == (
                world.accounts[ref])
        assert parties.resolve_public_id(conn, world.org_id, old_ids["ACC-3"]).account_id == (
            untouched)
        with pytest.raises(verification.TokenError, match="revoked"):
            verification.redeem(conn, world.org_id, code_affected, KEY)
        assert verification.redeem(conn, world.org_id, code_untouched, KEY).account_id == (
            untouched)
        record = store.incident(conn, world.org_id, incident_id)["record"]
    assert record["rotations"][0]["tokens_revoked"] == 1
    assert {a["retired_public_id"] for a in record["rotations"][0]["accounts"]} == {
        old_ids["ACC-1"], old_ids["ACC-2"]}


def test_an_old_id_never_answers_with_another_accounts_data_after_rotations(
        any_engine: Engine) -> None:
    world = swapped_world(any_engine)
    incident_id = pipeline.open_incident(any_engine, world.org_id, title="swap",
                                         aware_at=at(60), scope=pipeline.Scope(),
                                         actor="oncall")
    seen: list[str] = []
    for _ in range(3):
        with any_engine.connect() as conn:
            seen.append(parties.account(conn, world.org_id, world.accounts["ACC-1"])["public_id"])
        pipeline.rotate(any_engine, world.org_id, incident_id, actor="oncall")

    other = swapped_world(any_engine, "other")
    with any_engine.connect() as conn:
        for public_id in seen:
            lookup = parties.resolve_public_id(conn, world.org_id, public_id)
            assert lookup.gone and lookup.account_id is None
        # Another organization cannot resolve this organization's ids at all.
        assert not parties.resolve_public_id(conn, other.org_id, seen[0]).gone
    assert len(set(seen)) == 3
