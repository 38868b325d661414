"""``sealbill serve`` serves the console and the portal beside the API, from one process."""

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
from sealbill.web.security import CSP
from tests.e2e.catalog_fixture import ORG


def test_serve_answers_the_api_the_console_and_the_portal(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'sealbill.sqlite'}"
    # No session-wide key here: the installation key is made in the files folder, once.
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("SEALBILL_SECRET_KEY", "SEALBILL_KEYRING_DIR")}
    env = {**inherited, "SEALBILL_FILES_DIR": str(tmp_path / "files"),
           "SEALBILL_PUBLIC_URL": "https://billing.example"}
    (tmp_path / "org.json").write_text(json.dumps(ORG))
    subprocess.run([sys.executable, "-m", "sealbill", "organizations", "create", "-f",
                    str(tmp_path / "org.json"), "--db", db], check=True, env=env,
                   capture_output=True, timeout=120)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "sealbill", "serve", "--db", db,
                               "--port", str(port)], stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "sealbill serve did not start"
                time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/v1/accounts").status_code == 401
        console = httpx.get(f"{base}/console/sign-in")
        assert console.status_code == 200 and console.headers["content-security-policy"] == CSP
        portal = httpx.get(f"{base}/portal/acme/")
        assert portal.status_code == 200 and "Send me a link" in portal.text
        assert httpx.get(f"{base}/portal/no-such-org/").status_code == 404
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert (tmp_path / "files" / "secret.key").exists()  # the installation key, made once
