"""Operator console: the catalog (metrics, plans and their price versions) and the preview of a
declarative catalog file before it is applied (``sealbill apply -f catalog.yaml --dry-run``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from sealbill.app import apply, catalog
from sealbill.app.context import CATALOG_WRITE
from sealbill.app.errors import AppError
from sealbill.web import base
from sealbill.web.console import call, show, signed_in

router = APIRouter(prefix="/console")


async def _page(request: Request, who: base.Console, *, text: str = "",
                diff: dict[str, Any] | None = None, error: AppError | None = None
                ) -> Response:
    db = base.engine(request)
    metrics = await call(catalog.list_metrics, db, who.actor, who.org_id)
    plans = await call(catalog.list_plans, db, who.actor, who.org_id)
    page = show(request, who, "console/catalog.html", metrics=metrics, plans=plans,
                text=text, diff=diff, error=None if error is None else error.message,
                problems=[] if error is None else [str(p) for p in error.problems],
                may_apply=who.actor.can(CATALOG_WRITE))
    if error is not None:
        page.status_code = error.status
    return page


@router.get("/catalog")
@signed_in
async def catalog_page(request: Request, who: base.Console) -> Response:
    return await _page(request, who)


@router.post("/catalog")
@signed_in
async def catalog_apply(request: Request, who: base.Console) -> Response:
    """``preview`` shows the diff and writes nothing; ``apply`` applies the same file."""
    form = await base.posted(request, who.csrf)
    text, for_real = form.get("catalog", ""), form.get("action") == "apply"
    try:
        diff = await call(apply.apply, base.engine(request), who.actor, who.org_id, text,
                          dry_run=not for_real)
    except AppError as exc:
        return await _page(request, who, text=text, error=exc)
    return await _page(request, who, text="" if for_real else text, diff=diff)
