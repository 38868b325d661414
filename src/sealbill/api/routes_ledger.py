"""``/v1/ledger`` (search, verify) and ``/v1/sending`` (the kill switch: pause, resume)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from sealbill.api import schemas
from sealbill.api import schemas_incidents as safety
from sealbill.api.deps import ActorDep, EngineDep, org
from sealbill.api.problems import PROBLEM_RESPONSES
from sealbill.app import ledger, sending_switch
from sealbill.app.incident_inputs import PauseIn, ReasonIn

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/ledger", response_model=schemas.Page[safety.LedgerRow], tags=["ledger"])
def search_ledger(actor: ActorDep, engine: EngineDep, address: str = "", account: str = "",
                  invoice: str = "", since: datetime | None = None,
                  until: datetime | None = None, limit: Limit = 100,
                  cursor: str | None = None) -> Any:
    """Who received which invoice, about which account: every criterion given must match
    (``address`` exactly, any case; ``since`` ≤ sent < ``until``), newest first."""
    return ledger.search(engine, actor, org(actor), address=address, account=account,
                         invoice=invoice, since=since, until=until, limit=limit,
                         cursor=cursor)


@router.get("/ledger/verify", response_model=safety.LedgerVerification, tags=["ledger"])
def verify_ledger(actor: ActorDep, engine: EngineDep) -> Any:
    """Recompute the hash chain and seals, compare with the checkpoints outside the
    database; ``ok`` false lists each problem."""
    return ledger.verify(engine, actor, org(actor))


@router.get("/sending", response_model=safety.SendingSwitch, tags=["sending"])
def sending_state(actor: ActorDep, engine: EngineDep) -> Any:
    """The kill switch: paused or not, since when, by whom, why."""
    return sending_switch.state(engine, actor, org(actor))


@router.post("/sending/pause", response_model=safety.SendingSwitch, tags=["sending"])
def pause_sending(body: PauseIn, actor: ActorDep, engine: EngineDep) -> Any:
    """Stop all sending of the organization within one message."""
    return sending_switch.pause(engine, actor, org(actor), body.reason)


@router.post("/sending/resume", response_model=safety.SendingSwitch, tags=["sending"])
def resume_sending(body: ReasonIn, actor: ActorDep, engine: EngineDep) -> Any:
    """Lift the kill switch (an approver's or administrator's act, with its reason)."""
    return sending_switch.resume(engine, actor, org(actor), body.reason)
