"""Benchmark of usage ingestion over HTTP (``POST /v1/usage/batch``) beside the file import.

Usage:
    python bench/bench_ingest_api.py [--events 300000] [--batch 1000] [--clients 4]
                                     [--accounts 1000] [--db sqlite|postgresql]

In one run, on one fresh database: ``sealbill import usage`` of a JSONL file (in process),
then the same number of other events through the API — ``sealbill serve`` (uvicorn, one
process) in a subprocess, and a load generator here: ``--clients`` concurrent HTTP/1.1
keep-alive connections posting pre-encoded batches of ``--batch`` events (each request built as
bytes beforehand, sent on a raw asyncio stream: about 0.3 µs of client CPU per event, printed).
Both run on the same machine (the load generator's CPU counts against the server's). Besides
the wall-clock rate, the server's own CPU time during the load (``/proc/<pid>/stat``) gives
events per second of server CPU, a figure less at the mercy of the machine's other load
(printed with the load average). PostgreSQL: a throwaway cluster at default durability.
Prints a Markdown table row for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _event(n: int, accounts: int, prefix: str) -> dict[str, str]:
    moment = datetime(2026, 10, 1, tzinfo=UTC) + timedelta(seconds=(n * 7919) % (30 * 86400))
    return {"event_id": f"{prefix}-{n}", "account_reference": f"A{1 + n % accounts:07d}",
            "metric_code": "api_calls", "timestamp": moment.isoformat(),
            "value": str(1 + n % 500)}


def _key(url: str) -> str:
    from sealbill.app import operators
    from sealbill.app.context import local_actor
    from sealbill.store.db import create_engine

    engine = create_engine(url)
    root = local_actor()
    operators.create_operator(engine, root, "bench@acme.example", "Bench",
                              "bench password 123")
    key = str(operators.create_key(engine, root, 1, "bench@acme.example", "billing")["key"])
    engine.dispose()
    return key


def _import_file(url: str, workdir: Path, events: int, accounts: int) -> float:
    from sealbill.pipeline.billing.usage_import import import_usage_file
    from sealbill.store.db import create_engine

    path = workdir / "usage.jsonl"
    with path.open("w") as handle:
        for n in range(events):
            handle.write(json.dumps(_event(n, accounts, "file")) + "\n")
    engine = create_engine(url)
    started = time.perf_counter()
    result = import_usage_file(engine, 1, path)
    seconds = time.perf_counter() - started
    assert result["inserted"] == events, result
    engine.dispose()
    return events / seconds


async def _load(base: str, key: str, bodies: list[bytes], clients: int) -> float:
    """Posts ``bodies`` over ``clients`` keep-alive connections; the seconds it took.

    Each request is built as bytes before the clock starts and sent on a raw asyncio stream
    (its answer read by its ``Content-Length``): the load generator shares the 2 cores with
    the server, so it does as little per request as HTTP/1.1 allows."""
    host, port = base.removeprefix("http://").split(":")
    head = (f"POST /v1/usage/batch HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}"
            "\r\nContent-Type: application/json\r\nContent-Length: ")
    requests = [f"{head}{len(body)}\r\n\r\n".encode() + body for body in bodies]
    requests.reverse()  # popped from the end: sent in the order of ``bodies``

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while requests:
                writer.write(requests.pop())
                status = await reader.readuntil(b"\r\n\r\n")
                length = int(status.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                answer = await reader.readexactly(length)
                assert status.startswith(b"HTTP/1.1 200 "), (status + answer)[:300]
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - started


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve(url: str, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([sys.executable, "-m", "sealbill", "serve", "--db", url,
                               "--port", str(port), "--rate", "1000000000",
                               "--burst", "1000000000"],
                              env={**os.environ,
                                   "PYTHONPATH": str(ROOT / "src")})
    import socket

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("sealbill serve did not start")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench_billing import _setup, _url

    from sealbill.mail.sink import free_port

    with tempfile.TemporaryDirectory() as tmp:
        url, cluster = _url(args.db, Path(tmp))
        try:
            _setup(url, args.accounts, Path(tmp))
            key = _key(url)
            # Each side writes into the table as the other found it when it goes first:
            # ``--api-first`` gives the API the empty table and the file import a table
            # already holding the API's events (by default, the other way round).
            if not args.api_first:
                file_rate = _import_file(url, Path(tmp), args.events, args.accounts)
            bodies = [json.dumps([_event(n, args.accounts, "api")
                                  for n in range(start, min(start + args.batch,
                                                            args.events))]).encode()
                      for start in range(0, args.events, args.batch)]
            port = free_port()
            server = _serve(url, port)
            try:
                # One batch first, not timed: the server builds its routes' state lazily, on
                # the first request (about a second of CPU on this machine).
                warm = [json.dumps([_event(n, args.accounts, "warm")
                                    for n in range(args.batch)]).encode()]
                asyncio.run(_load(f"http://127.0.0.1:{port}", key, warm, 1))
                cpu, own = _cpu_seconds(server.pid), _cpu_seconds(os.getpid())
                seconds = asyncio.run(_load(f"http://127.0.0.1:{port}", key, bodies,
                                            args.clients))
                server_cpu = _cpu_seconds(server.pid) - cpu
                client_cpu = _cpu_seconds(os.getpid()) - own
            finally:
                server.terminate()
                server.wait(30)
            if args.api_first:
                file_rate = _import_file(url, Path(tmp), args.events, args.accounts)
        finally:
            if cluster:
                cluster.stop()
    return {"db": args.db, "events": args.events, "batch": args.batch,
            "clients": args.clients, "api_first": args.api_first,
            "api_events_per_s": round(args.events / seconds),
            "file_events_per_s": round(file_rate), "api_seconds": round(seconds, 2),
            "server_cpu_seconds": round(server_cpu, 2),
            "client_cpu_seconds": round(client_cpu, 2),
            "events_per_server_cpu_s": round(args.events / max(server_cpu, 1e-9)),
            "load_average": [round(x, 1) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--api-first", action="store_true",
                        help="the API load before the file import (each then writes into the "
                        "table as the other left it)")
    result = run(parser.parse_args())
    print(f"| {datetime.now(UTC):%Y-%m-%d %H:%M} UTC | {platform.node()} | {result['db']} | "
          f"{result['events']:,} | {result['batch']} | {result['clients']} | "
          f"{result['api_events_per_s']:,} | {result['file_events_per_s']:,} | "
          f"{result['events_per_server_cpu_s']:,} | {result['load_average'][0]} |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
