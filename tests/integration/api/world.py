"""Two organizations with one of everything, built through the application layer, and the
keys of their operators: what the API tests walk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from sealbill.app import (
    accounts,
    catalog,
    contacts,
    operators,
    organizations,
    runs,
    subscriptions,
    usage,
)
from sealbill.app.context import ROLES, local_actor
from tests.e2e.catalog_fixture import ACCOUNTS, CATALOG_YAML, ORG


@dataclass
class Org:
    org_id: int
    slug: str
    keys: dict[str, str] = field(default_factory=dict)  # role -> key
    ids: dict[str, str] = field(default_factory=dict)  # path parameter -> public id
    refs: dict[str, str] = field(default_factory=dict)


def build_org(engine: Engine, slug: str, index: int) -> Org:
    from sealbill.app import apply

    root = local_actor()
    created = organizations.create(engine, root, {**ORG, "slug": slug})
    del created
    with engine.begin() as conn:
        from sealbill.store.parties import records as parties

        org_id = int(parties.organization_by_slug(conn, slug)["id"])
    org = Org(org_id, slug)
    for role in ROLES:
        email = f"{role}-{index}@ops.example"
        operators.create_operator(engine, root, email, role, "correct horse battery")
        org.keys[role] = operators.create_key(engine, root, org_id, email, role)["key"]
    apply.apply(engine, root, org_id, CATALOG_YAML, dry_run=False)
    acc = accounts.create(engine, root, org_id, ACCOUNTS[0])
    contact = contacts.add(engine, root, org_id, acc["id"], {"email": f"ap@{slug}-billing.fr"})
    contacts.confirm_by_operator(engine, root, org_id, contact["id"], acc["id"], "phone call")
    sub = subscriptions.create(engine, root, org_id, {"account": acc["id"], "plan": "starter",
                                                      "started_on": "2026-10-01"})
    event = usage.record(engine, root, org_id, {
        "event_id": f"ev-{slug}", "account": acc["id"], "metric": "api_calls",
        "timestamp": "2026-10-02T00:00:00Z", "value": "10"})
    run = runs.start(engine, root, org_id, "2026-11")["run_id"]
    runs.finalize(engine, root, org_id, run)
    from sealbill.app import invoices

    first = invoices.list_invoices(engine, root, org_id)["items"][0]
    invoice = first["id"]
    org.refs["invoice_number"] = str(first["number"])
    plan = catalog.show_plan(engine, root, org_id, "starter")["id"]
    from sealbill.app import incidents

    incident = incidents.open_incident(engine, root, org_id, {
        "title": f"Invoices of {slug} misdelivered?", "aware_at": "2026-11-20T09:00:00Z",
        "run_id": run})["id"]
    org.ids = {"account_id": acc["id"], "contact_id": contact["id"], "plan_id": plan,
               "subscription_id": sub["id"], "usage_id": event["id"], "run_id": run,
               "invoice_id": invoice, "incident_id": incident}
    return org


# A Postfix DSN for a message no organization sent: read, matched to nothing, changes nothing.
DSN_SAMPLE = (Path(__file__).resolve().parents[2] / "data" / "dsn" /
              "postfix_5xx_user_unknown.eml").read_text(encoding="utf-8")


def body_for(method: str, path: str, org: Org) -> Any:
    """A valid body for the route, naming ``org``'s objects where it names any."""
    acc = org.ids["account_id"]
    bodies: dict[str, Any] = {
        "/v1/organization/identity": {"phone": "+33 1 00 00 00 00"},
        "/v1/organization/sending": {"sender_name": "Billing team"},
        "/v1/organization/series": {"invoice_series": "G-"},
        "/v1/metrics": {"code": "seats", "name": "Seats", "aggregation": "max"},
        "/v1/plans": {"code": "team", "name": "Team", "currency": "EUR", "prices": [
            {"effective_from": "2026-01-01", "charges": [
                {"code": "base", "model": "flat", "description_fr": "A",
                 "description_en": "A", "amount": "5"}]}]},
        "/v1/plans/{plan_id}/prices": {"effective_from": "2027-01-01", "charges": [
            {"code": "base", "model": "flat", "description_fr": "A", "description_en": "A",
             "amount": "35"}]},
        "/v1/catalog/apply": {"catalog": CATALOG_YAML, "dry_run": True},
        "/v1/accounts": {**ACCOUNTS[1]},
        "/v1/accounts/{account_id}": {"city": "Nice"},
        "/v1/accounts/{account_id}/archive": None,
        "/v1/accounts/{account_id}/contacts": {"email": "new@client-billing.fr"},
        "/v1/contacts/{contact_id}/change-address": {"email": "moved@client-billing.fr"},
        "/v1/contacts/{contact_id}/set-role": {"account": acc, "role": "admin"},
        "/v1/contacts/{contact_id}/unlink": {"account": acc},
        "/v1/contacts/{contact_id}/vouch": {"account": acc, "reason": "phone call"},
        "/v1/contacts/{contact_id}/verify": {"account": acc},
        "/v1/verifications/confirm": {"code": "not-a-code"},
        "/v1/subscriptions": {"account": acc, "plan": "pro", "started_on": "2026-10-01"},
        "/v1/subscriptions/{subscription_id}/change-plan": {"plan": "pro",
                                                            "on": "2026-11-16"},
        "/v1/subscriptions/{subscription_id}/cancel": {"at_period_end": True},
        "/v1/usage": {"event_id": "ev-new", "account": acc, "metric": "api_calls",
                      "timestamp": "2026-10-03T00:00:00Z", "value": "1"},
        "/v1/usage/{usage_id}/void": {"reason": "wrong counter"},
        "/v1/runs": {"period": "2026-12"},
        "/v1/runs/enqueue": {"period": "2027-01"},
        "/v1/runs/{run_id}/finalize": None,
        "/v1/runs/{run_id}/render": None,
        "/v1/runs/{run_id}/plan": {"replan": False},
        "/v1/runs/{run_id}/approve": {"reason": "checked"},
        "/v1/runs/{run_id}/send": None,
        "/v1/runs/{run_id}/set-aside": {"invoice": org.refs.get("invoice_number", "F-1"),
                                        "reason": "customer asked us to wait"},
        "/v1/runs/{run_id}/retry": {"invoice": org.refs.get("invoice_number", "F-1"),
                                    "reason": "customer ready now"},
        "/v1/usage/batch": [{"event_id": "batch-1", "account_reference": "C001",
                             "metric_code": "api_calls", "timestamp": "2026-10-03T00:00:00Z",
                             "value": "7"}],
        "/v1/invoices/{invoice_id}/credit-notes": {"reason": "goodwill", "amount": "1.00"},
        "/v1/invoices/{invoice_id}/void": {"reason": "wrong customer"},
        "/v1/webhooks": {"url": "https://93.184.216.34/hooks", "events": ["*"]},
        "/v1/bounces": {"messages": [DSN_SAMPLE]},
        "/v1/contacts/{contact_id}/clear-bounce": {"reason": "mailbox fixed, checked by phone"},
        "/v1/incidents": {"title": "Wrong recipient reported", "run_id": org.ids["run_id"],
                          "aware_at": "2026-11-21T10:00:00+01:00"},
        "/v1/incidents/{incident_id}/updates": {"cause": "stale contact",
                                                "measures_taken": ["contact unlinked"]},
        "/v1/incidents/{incident_id}/assess": {
            "changes": {"cb_confidentiality": "0.5"},
            "justifications": {"cb_confidentiality": "recipients may have forwarded it"}},
        "/v1/incidents/{incident_id}/decide": {"notify": False, "reason": "no exposure found",
                                               "communication": "not_required",
                                               "communication_reason": "nothing exposed"},
        "/v1/incidents/{incident_id}/correct-link": {
            "contact": org.ids["contact_id"], "account": acc, "entitled": True,
            "reason": "confirmed by phone", "valid_from": "2026-10-01T00:00:00Z"},
        "/v1/incidents/{incident_id}/rotate": None,
        "/v1/incidents/{incident_id}/contain": None,
        "/v1/incidents/{incident_id}/drafts": None,
        "/v1/incidents/{incident_id}/close": {"reason": "no exposure found"},
        "/v1/sending/pause": {"reason": "checking a report"},
        "/v1/sending/resume": {"reason": "report checked"},
    }
    return bodies.get(path) if method in ("POST", "PATCH") else None


def fill(path: str, org: Org) -> str:
    for name, value in org.ids.items():
        path = path.replace("{" + name + "}", value)
    return path
