"""``/v1/organization``, ``/v1/metrics``, ``/v1/plans``, ``/v1/catalog/apply``, ``/v1/audit``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from sealbill.api import schemas
from sealbill.api.bodies import ApplyIn, WebhookIn
from sealbill.api.deps import ActorDep, EngineDep, org
from sealbill.api.problems import PROBLEM_RESPONSES
from sealbill.app import apply, audit, catalog, organizations, webhooks
from sealbill.app.common import etag
from sealbill.inputs.catalog import MetricIn, PlanIn, PriceVersionIn
from sealbill.inputs.organizations import (
    OrganizationIdentity,
    OrganizationSending,
    OrganizationSeries,
)

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)
Limit = Annotated[int, Query(ge=1, le=1000)]
IfMatch = Annotated[str | None, Header(description="The ETag read last; 412 if it changed.")]


@router.get("/organization", response_model=schemas.Organization, tags=["organization"])
def get_organization(actor: ActorDep, engine: EngineDep, response: Response) -> Any:
    """The key's organization (its ``ETag`` goes in ``If-Match`` of an update)."""
    result = organizations.show_id(engine, actor, org(actor))
    response.headers["ETag"] = etag(result)
    return result


def _patch(section: str, body: Any, actor: Any, engine: Any, if_match: str | None,
           response: Response) -> Any:
    result = organizations.update(engine, actor, org(actor), section,
                                  body.model_dump(exclude_unset=True), if_match=if_match)
    response.headers["ETag"] = etag(result)
    return result


@router.patch("/organization/identity", response_model=schemas.Organization,
              tags=["organization"])
def set_identity(body: OrganizationIdentity, actor: ActorDep, engine: EngineDep,
                 response: Response, if_match: IfMatch = None) -> Any:
    """Seller identity printed on invoices."""
    return _patch("identity", body, actor, engine, if_match, response)


@router.patch("/organization/sending", response_model=schemas.Organization,
              tags=["organization"])
def set_sending(body: OrganizationSending, actor: ActorDep, engine: EngineDep,
                response: Response, if_match: IfMatch = None) -> Any:
    """Sender, archive mailbox, electronic address."""
    return _patch("sending", body, actor, engine, if_match, response)


@router.patch("/organization/series", response_model=schemas.Organization,
              tags=["organization"])
def set_series(body: OrganizationSeries, actor: ActorDep, engine: EngineDep,
               response: Response, if_match: IfMatch = None) -> Any:
    """Numbering series of the next invoices and credit notes."""
    return _patch("series", body, actor, engine, if_match, response)


@router.get("/metrics", response_model=list[schemas.Metric], tags=["catalog"])
def list_metrics(actor: ActorDep, engine: EngineDep) -> Any:
    return catalog.list_metrics(engine, actor, org(actor))


@router.post("/metrics", response_model=schemas.Metric, status_code=201, tags=["catalog"])
def create_metric(body: MetricIn, actor: ActorDep, engine: EngineDep) -> Any:
    return catalog.create_metric(engine, actor, org(actor), body)


@router.get("/plans", response_model=list[schemas.Plan], tags=["catalog"])
def list_plans(actor: ActorDep, engine: EngineDep) -> Any:
    return catalog.list_plans(engine, actor, org(actor))


@router.post("/plans", response_model=schemas.Plan, status_code=201, tags=["catalog"])
def create_plan(body: PlanIn, actor: ActorDep, engine: EngineDep) -> Any:
    """A plan with its price versions (decimals as strings)."""
    return catalog.create_plan(engine, actor, org(actor), body)


@router.get("/plans/{plan_id}", response_model=schemas.Plan, tags=["catalog"])
def get_plan(plan_id: str, actor: ActorDep, engine: EngineDep) -> Any:
    return catalog.show_plan(engine, actor, org(actor), _public(plan_id, "plan_"))


@router.post("/plans/{plan_id}/prices", response_model=schemas.Plan, status_code=201,
             tags=["catalog"])
def add_price(plan_id: str, body: PriceVersionIn, actor: ActorDep, engine: EngineDep) -> Any:
    """A new price version, effective after the latest one (past versions never change)."""
    return catalog.add_price(engine, actor, org(actor), _public(plan_id, "plan_"), body)


@router.post("/catalog/apply", response_model=schemas.ApplyResult, tags=["catalog"])
def apply_catalog(body: ApplyIn, actor: ActorDep, engine: EngineDep) -> Any:
    """Make the catalog match a YAML document; ``dry_run`` returns the diff only."""
    return apply.apply(engine, actor, org(actor), body.catalog, dry_run=body.dry_run)


@router.get("/audit", response_model=schemas.Page[schemas.AuditEntry], tags=["audit"])
def audit_log(actor: ActorDep, engine: EngineDep, action: str | None = None,
              object_id: str | None = None, limit: Limit = 50,
              cursor: str | None = None) -> Any:
    """Every change (who, what, before/after, from which key), oldest first."""
    return audit.entries(engine, actor, org(actor), action=action, object_id=object_id,
                         limit=limit, cursor=cursor)


def _public(value: str, prefix: str) -> str:
    """Path ids are public ids only (a code or number would be guessable)."""
    from sealbill.app.errors import NotFound

    if not value.startswith(prefix):
        raise NotFound(f"{value!r} not found")
    return value



@router.post("/webhooks", response_model=schemas.WebhookEndpoint, status_code=201,
             tags=["webhooks"])
def add_webhook(body: WebhookIn, actor: ActorDep, engine: EngineDep) -> Any:
    """Subscribe an https endpoint (public addresses only); the signing secret is in this
    answer only (Standard Webhooks)."""
    return webhooks.add_endpoint(engine, actor, org(actor), body.url, body.events)


@router.get("/webhooks/messages", response_model=schemas.Page[schemas.WebhookMessage],
            tags=["webhooks"])
def webhook_messages(actor: ActorDep, engine: EngineDep,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                     cursor: str | None = None) -> Any:
    """The outbox, oldest first, a page at a time: each message, its attempts and outcome
    (``next_cursor`` until the end)."""
    return webhooks.messages(engine, actor, org(actor), limit=limit, cursor=cursor)
