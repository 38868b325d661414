"""RFC 9457 problem details for every error, naming the fields at fault."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from sealbill.app.errors import AppError
from sealbill.inputs.problems import message_of

MEDIA_TYPE = "application/problem+json"


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] = []


def problem(status: int, title: str, detail: str | None = None,
            errors: list[dict[str, str]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status,
                            "detail": detail, "errors": errors or []}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.message,
                       [{"field": p.field, "message": p.message} for p in exc.problems])

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": ".".join(str(p) for p in e["loc"][1:] or e["loc"]),
                   "message": message_of(e)}  # the CLI's and the file import's text
                  for e in exc.errors()]
        return problem(422, "Invalid input", f"{len(errors)} problem(s); nothing was written",
                       errors)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), None, None,
                       dict(exc.headers) if exc.headers else None)


# Every route documents the problems it can answer (schema checks compare against these).
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": title, "content": {MEDIA_TYPE: {}}}
    for status, title in ((400, "Bad request"), (401, "Unauthenticated"), (403, "Forbidden"),
                          (404, "Not found"), (409, "Conflict"), (410, "Gone"),
                          (412, "Precondition failed"), (422, "Invalid input"),
                          (429, "Too many requests"))
}
