"""The demo's full billing cycle on an embedded SQLite database, stage by stage.

meter -> rate -> invoice -> render -> plan -> guard -> send -> ledger, each stage the same
code an operator runs through the CLI.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sealbill import keys
from sealbill.demo.seed import seed_organization
from sealbill.pipeline.billing.finalize import finalize_run
from sealbill.pipeline.billing.invoice import bill_period, period_bounds
from sealbill.pipeline.billing.render import render_run
from sealbill.pipeline.billing.usage_import import import_usage_file
from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade


@dataclass
class DemoReport:
    workdir: Path
    database_url: str
    org_slug: str = "acme-cloud"
    stages: list[dict[str, Any]] = field(default_factory=list)

    def stage(self, name: str, started: float, **facts: Any) -> None:
        self.stages.append({"stage": name, "seconds": round(time.perf_counter() - started, 3),
                            **facts})


MARKER = ".sealbill-demo"
# What a demo run creates in its folder; only these are ever removed, and only when the
# folder carries the marker (a folder the operator chose by mistake is never emptied).
CREATED = ("sealbill.sqlite", "sealbill.sqlite-wal", "sealbill.sqlite-shm", "files",
           "maildir", "accounts.json", "usage.jsonl", "dkim.pem")


class DemoFolderError(ValueError):
    """The demo folder holds things sealbill did not create (bad usage: exit code 2)."""


def prepare_workdir(workdir: Path) -> None:
    """An empty or earlier-demo folder, with the marker; anything else is refused."""
    if workdir.is_symlink() or (workdir.exists() and not workdir.is_dir()):
        raise DemoFolderError(f"{workdir}: not a folder sealbill created; choose another "
                              "--workdir")
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARKER).is_file():
            raise DemoFolderError(
                f"{workdir}: holds files sealbill did not create (no {MARKER} marker); "
                "choose another --workdir, or empty it yourself")
        for name in CREATED:
            path = workdir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("created by `sealbill demo`; it removes only "
                                  f"{', '.join(CREATED)}\n", encoding="utf-8")


def run_demo(workdir: Path, *, accounts: int = 1000, period: str = "2026-11",
             deliver: Callable[[Any, int, int, DemoReport], None] | None = None,
             say: Callable[[str], None] = print) -> DemoReport:
    """Seed, meter, bill, finalize, render; then ``deliver`` (plan, guard, send, ledger)."""
    prepare_workdir(workdir)
    url = f"sqlite:///{workdir / 'sealbill.sqlite'}"
    engine = create_engine(url)
    report = DemoReport(workdir, url)
    upgrade(engine)
    # The sealing keyring of this demo lives beside its documents (unless
    # SEALBILL_KEYRING_DIR says otherwise): commands run later on the demo's database need
    # SEALBILL_KEYRING_DIR=<workdir>/files.
    keyring = workdir / "files"
    keys.use(engine, keys.load(keys.keyring_dir(os.environ.get("SEALBILL_KEYRING_DIR")
                                                or keyring))
             or keys.create_first_key(keyring))
    start, _ = period_bounds(period)
    t = time.perf_counter()
    with engine.begin() as conn:
        seeded = seed_organization(conn, accounts, date(start.year, start.month, 1), workdir)
    org_id = int(seeded["org_id"])
    report.stage("seed", t, accounts=accounts)
    say(f"seeded {accounts} accounts, plans of every charge model, contacts")
    t = time.perf_counter()
    usage = import_usage_file(engine, org_id, seeded["usage_file"])
    report.stage("meter", t, **usage)
    say(f"meter: {usage['inserted']} usage events imported")
    t = time.perf_counter()
    billed = bill_period(engine, org_id, period, actor="demo-operator")
    report.stage("rate+invoice", t, drafted=billed.drafted, totals=billed.totals)
    say(f"rate: {billed.drafted} draft invoices for {period}")
    assert billed.run_id is not None
    t = time.perf_counter()
    done = finalize_run(engine, org_id, billed.run_id, issue_date=start)
    report.stage("finalize", t, finalized=len(done), first=done[0][1], last=done[-1][1])
    say(f"finalize: {len(done)} invoices numbered {done[0][1]} .. {done[-1][1]}")
    t = time.perf_counter()
    rendered = render_run(engine, org_id, billed.run_id, workdir / "files")
    report.stage("render", t, rendered=rendered)
    say(f"render: {rendered} PDF/Factur-X invoices in {workdir / 'files'}")
    if deliver is not None:
        deliver(engine, org_id, billed.run_id, report)
    engine.dispose()
    return report
