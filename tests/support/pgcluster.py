"""A throwaway PostgreSQL cluster on loopback for the test session (initdb + pg_ctl).

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user
and every command runs through ``runuser``. ``SEALBILL_TEST_PG_URL`` skips all this and
uses a server you already run.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL binaries not found: install them with `apt-get install postgresql` "
        "(make test does this) or set SEALBILL_TEST_PG_URL"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    directory: Path
    port: int
    bindir: Path
    as_postgres: bool
    # Tests trade durability for speed; a benchmark runs with PostgreSQL's defaults.
    durable: bool = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://sealbill@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, text=True)

    def start(self) -> None:
        data = self.directory / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "sealbill", "-E", "UTF8",
                  "--no-sync")
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c max_connections=100"
        )
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l",
                  str(self.directory / "log"), "-w", "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def start_cluster(*, durable: bool = False) -> Cluster:
    """A new cluster; ``durable`` keeps fsync, synchronous commit and full-page writes on."""
    as_postgres = os.geteuid() == 0
    directory = Path(tempfile.mkdtemp(prefix="sealbill-pg-"))
    if as_postgres:
        shutil.chown(directory, "postgres", "postgres")
    cluster = Cluster(directory, _free_port(), _bindir(), as_postgres, durable)
    cluster.start()
    return cluster
