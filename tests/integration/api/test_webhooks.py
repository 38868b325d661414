"""Webhooks: queued in the transaction of the event, signed as Standard Webhooks (checked
with the reference library), retried with backoff, never sent to a private address."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from standardwebhooks import Webhook

from sealbill.app import contacts, webhooks
from sealbill.app.context import local_actor
from sealbill.store.schema import webhook_messages
from tests.integration.api.world import build_org

ROOT = local_actor()


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            state.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.answers.pop(0) if state.answers else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()


def test_a_verified_contact_is_delivered_signed_and_the_reference_library_accepts_it(
        any_engine: Engine, receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    org = build_org(any_engine, "alpha", 1)
    endpoint = webhooks.add_endpoint(any_engine, ROOT, org.org_id, url, ["contact.verified"],
                                     allow_loopback=True)
    added = contacts.add(any_engine, ROOT, org.org_id, org.ids["account_id"],
                         {"email": "new@alpha-billing.fr"})
    contacts.confirm_by_operator(any_engine, ROOT, org.org_id, added["id"],
                                 org.ids["account_id"], "called the customer")
    state.answers = [500]  # the first attempt fails: the message waits for its retry
    assert webhooks.deliver(any_engine) == {"delivered": 0, "retrying": 1, "failed": 0}
    assert webhooks.deliver(any_engine) == {"delivered": 0, "retrying": 0, "failed": 0}
    later = datetime.now(UTC) + webhooks.BACKOFF[0] + timedelta(seconds=1)
    assert webhooks.deliver(any_engine, now=later)["delivered"] == 1
    headers, body = state.requests[-1]
    event = Webhook(endpoint["secret"]).verify(body, headers)  # raises on a bad signature
    assert event["type"] == "contact.verified"
    assert event["data"]["contact_id"] == added["id"] and event["data"]["method"] == "operator"
    assert headers["webhook-id"] == state.requests[0][0]["webhook-id"]  # same id on a retry
    with pytest.raises(Exception):  # noqa: B017 - any verification error
        Webhook("whsec_" + "A" * 32).verify(body, headers)


def test_the_event_and_its_message_commit_together_or_not_at_all(sqlite_engine: Engine
                                                                 ) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    webhooks.add_endpoint(sqlite_engine, ROOT, org.org_id, "https://93.184.216.34/h", ["*"])
    added = contacts.add(sqlite_engine, ROOT, org.org_id, org.ids["account_id"],
                         {"email": "new@alpha-billing.fr"})
    with sqlite_engine.begin() as conn:  # the outbox refuses writes: a fault in the database
        conn.exec_driver_sql("CREATE TRIGGER outbox_down BEFORE INSERT ON webhook_messages "
                             "BEGIN SELECT RAISE(ABORT, 'outbox down'); END")
    with pytest.raises(sa.exc.IntegrityError, match="outbox down"):
        contacts.confirm_by_operator(sqlite_engine, ROOT, org.org_id, added["id"],
                                     org.ids["account_id"], "called the customer")
    shown = contacts.show(sqlite_engine, ROOT, org.org_id, added["id"])
    assert [link["status"] for link in shown["links"]] == ["pending"]  # no event, no change
    assert "verified" not in [e["event"] for e in shown["history"]]
    with sqlite_engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER outbox_down")
    contacts.confirm_by_operator(sqlite_engine, ROOT, org.org_id, added["id"],
                                 org.ids["account_id"], "called the customer")
    with sqlite_engine.begin() as conn:
        types = conn.execute(sa.select(webhook_messages.c.event_type)).scalars().all()
    assert types.count("contact.verified") == 1


@pytest.mark.parametrize(("url", "allow"), [
    ("http://93.184.216.34/h", False),  # not https
    ("https://10.0.0.8/h", False), ("https://192.168.1.2/h", False),
    ("https://169.254.169.254/latest", False), ("https://[::1]/h", False),
    ("https://127.0.0.1/h", False),  # loopback without the development flag
    ("http://10.0.0.8/h", True),  # the flag allows loopback only
])
def test_endpoints_on_private_ranges_or_without_https_are_refused(url: str, allow: bool
                                                                  ) -> None:
    assert webhooks.url_problem(url, allow_loopback=allow) is not None


def test_a_name_resolving_to_a_private_address_is_refused_at_delivery_too() -> None:
    assert webhooks.url_problem("https://hooks.example/h", allow_loopback=False,
                                resolver=lambda host: ["10.1.2.3"]) is not None
    assert webhooks.url_problem("https://hooks.example/h", allow_loopback=False,
                                resolver=lambda host: ["93.184.216.34"]) is None
