"""Composing ahead in worker processes (``SendOptions.compose_workers``) changes nothing but
where the bytes are built: the same messages arrive, a data fault is still stopped by the
guard in the sender, and a worker that cannot build a message makes it a refused message."""

from __future__ import annotations

from dataclasses import replace
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path

import pytest
import sqlalchemy as sa

from sealbill.pipeline import compose
from sealbill.store import outbox as box
from sealbill.store.schema import documents
from tests.integration.delivery.conftest import FAST, World

AHEAD = replace(FAST, compose_workers=1)


def _unsigned(data: bytes) -> bytes:
    """The message without its DKIM-Signature field (its t= is the signing second)."""
    assert data.startswith(b"DKIM-Signature:")
    msg = message_from_bytes(data, policy=compat32)
    cut = data.index(b"\r\n" + msg.keys()[1].encode() + b":")
    return data[cut + 2:]


def _send_ahead(world: World) -> None:
    result = world.plan()
    if result.verdict == "hold":
        world.approve()
    world.send(options=AHEAD)


def test_the_same_messages_arrive(world: World) -> None:
    _send_ahead(world)
    assert world.run_status() == "sent"
    assert world.wrong_deliveries() == [] and world.ledger_ok()
    with world.engine.begin() as conn:
        items = box.items(conn, world.org_id, world.run_id, statuses=("sent",))
        expected = {i.message_id: compose.compose(conn, world.org_id, i, None).outgoing
                    for i in items}
    assert len(world.smtp.accepted) == len(expected) == 4
    for message in world.smtp.accepted:
        built = expected[str(message.message_id)]
        assert _unsigned(message.data) == built.data
        assert message.rcpt_tos == built.rcpt_to


def test_a_data_fault_is_stopped_by_the_guard(world: World) -> None:
    ids = world.scenario.invoice_ids
    with world.engine.begin() as conn:
        other = {k: (p, s) for k, p, s in conn.execute(
            sa.select(documents.c.kind, documents.c.path, documents.c.sha256).where(
                documents.c.invoice_id == ids[1]))}
        for kind in ("html", "text", "txt"):
            if kind in other:
                conn.execute(sa.update(documents).where(
                    documents.c.invoice_id == ids[0], documents.c.kind == kind).values(
                    path=other[kind][0], sha256=other[kind][1]))
    _send_ahead(world)
    assert world.wrong_deliveries() == []
    assert world.run_status() == "halted"
    assert "another account's identifier" in world.alert_text()


@pytest.mark.parametrize("fault", ["file swapped on disk", "file missing"])
def test_a_message_the_worker_cannot_build_is_refused(world: World, fault: str) -> None:
    ids = world.scenario.invoice_ids
    with world.engine.begin() as conn:
        path = conn.execute(sa.select(documents.c.path).where(
            documents.c.invoice_id == ids[0], documents.c.kind == "pdf")).scalar_one()
    if fault == "file missing":
        Path(path).unlink()
    else:
        Path(path).write_bytes(Path(path).read_bytes() + b"%tampered")
    _send_ahead(world)
    assert world.wrong_deliveries() == []
    assert world.run_status() == "halted"
    assert "guard:build" in world.alert_causes()
