"""The console and the portal are served by the API's process: mounted after the API's routes,
both answer, each with its own rules (problem details for /v1, pages with a CSP for the web)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sealbill.api.app import create_app
from sealbill.web import WebConfig, mount
from sealbill.web.security import CSP


def test_api_and_web_answer_from_one_application(sqlite_engine: Engine) -> None:
    app = create_app(sqlite_engine)
    mount(app, sqlite_engine, WebConfig("https://billing.example", b"k" * 32, lambda: None))
    client = TestClient(app, base_url="https://testserver")
    api = client.get("/v1/accounts")
    assert api.status_code == 401
    assert api.headers["content-type"].startswith("application/problem+json")
    assert client.get("/openapi.json").json()["info"]["title"] == "sealbill API"
    page = client.get("/console/sign-in")
    assert page.status_code == 200 and "Operator sign-in" in page.text
    assert page.headers["content-security-policy"] == CSP
    assert client.get("/console/", follow_redirects=False).headers["location"] == \
        "/console/sign-in"
    assert client.get("/static/htmx.min.js").status_code == 200
