"""Route dependencies: the authenticated actor, and the engine of the application."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from sealbill.app.context import Actor
from sealbill.app.errors import Unauthenticated

_bearer = HTTPBearer(auto_error=False, description="An API key: sbk_...")


def actor(request: Request,
          _credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Actor:
    """The key's actor (authenticated once, by the middleware); 401 without one."""
    found = getattr(request.state, "actor", None)
    if found is None:
        raise Unauthenticated("missing, unknown or revoked API key "
                              "(Authorization: Bearer sbk_...)")
    return found  # type: ignore[no-any-return]


def engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


ActorDep = Annotated[Actor, Depends(actor)]
EngineDep = Annotated[Engine, Depends(engine)]


def org(a: Actor) -> int:
    assert a.org_id is not None  # every API key is scoped to one organization
    return a.org_id

