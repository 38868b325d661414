"""``sealbill serve`` as an operator starts it: a real uvicorn process answering on /v1, its
OpenAPI 3.1 document and docs, keys made at the terminal beforehand."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sealbill.mail.sink import free_port
from tests.e2e.catalog_fixture import ORG


def _sealbill(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEALBILL_OPERATOR_PASSWORD": "correct horse battery"}
    return subprocess.run([sys.executable, "-m", "sealbill", *args, "--db", db, "--json"],
                          capture_output=True, text=True, timeout=120, env=env, check=True)


def test_serve_answers_with_the_key_made_at_the_terminal(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'sealbill.sqlite'}"
    (tmp_path / "org.json").write_text(json.dumps(ORG))
    _sealbill(db, "organizations", "create", "-f", str(tmp_path / "org.json"))
    _sealbill(db, "operators", "create", "--email", "ops@acme.example", "--name", "Ops")
    key = json.loads(_sealbill(db, "keys", "create", "--org", "acme", "--operator",
                               "ops@acme.example", "--role", "read-only").stdout)["key"]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "sealbill", "serve", "--db", db,
                               "--port", str(port)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "sealbill serve did not listen"
                time.sleep(0.1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            schema = client.get("/openapi.json").json()
            assert schema["openapi"].startswith("3.1")
            assert client.get("/docs").status_code == 200
            assert client.get("/v1/organization").status_code == 401
            me = client.get("/v1/organization", headers={"Authorization": f"Bearer {key}"})
            assert me.status_code == 200 and me.json()["slug"] == "acme"
            assert me.json()["id"].startswith("org_") and me.headers["etag"]
            refused = client.post("/v1/metrics", headers={"Authorization": f"Bearer {key}"},
                                  json={"code": "x", "name": "X", "aggregation": "sum"})
            assert refused.status_code == 403
            assert refused.headers["content-type"] == "application/problem+json"
    finally:
        server.terminate()
        server.wait(20)
