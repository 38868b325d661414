"""When the periodic jobs start a cycle, and what the distributed path says on SQLite."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealbill.workers import periodic
from sealbill.workers.queue import NeedsPostgres, conninfo, make_app, require_postgres


def test_an_organization_starts_on_its_billing_day_once_per_period() -> None:
    orgs = [(1, None), (2, 15), (3, 1)]
    assert periodic.due_organizations(orgs, date(2026, 11, 1), set()) == [1, 3]
    assert periodic.due_organizations(orgs, date(2026, 11, 15), set()) == [2]
    assert periodic.due_organizations(orgs, date(2026, 11, 1), {(1, "2026-11")}) == [3]
    assert periodic.due_organizations(orgs, date(2026, 11, 2), set()) == []


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2040, 12, 31)),
       st.integers(min_value=1, max_value=28))
def test_each_organization_is_due_on_exactly_one_day_of_each_month(today: date, day: int
                                                                    ) -> None:
    month = [today.replace(day=d) for d in range(1, 29)]
    due_days = [d for d in month if periodic.due_organizations([(7, day)], d, set())]
    assert due_days == [today.replace(day=day)]
    assert periodic.period_for(today) == f"{today.year:04d}-{today.month:02d}"


def test_the_billing_day_is_refused_past_the_28th(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(periodic.BILLING_DAY_ENV, "31")
    with pytest.raises(ValueError, match="1 to 28"):
        periodic.billing_day()
    monkeypatch.setenv(periodic.BILLING_DAY_ENV, "12")
    assert periodic.billing_day() == 12


def test_periodic_jobs_are_registered_with_their_schedules() -> None:
    app = make_app("postgresql://sealbill@db.example/sealbill")
    crons = {task: p.cron for (task, _), p in app.periodic_registry.periodic_tasks.items()}
    assert crons == {"sealbill.cycles": "0 2 * * *", "sealbill.retry_bounced": "17 * * * *",
                     "sealbill.expire_links": "41 * * * *",
                     "sealbill.stalled": "* * * * * */5"}
    assert {"sealbill.rate", "sealbill.finalize", "sealbill.render", "sealbill.plan",
            "sealbill.canary", "sealbill.send", "sealbill.close",
            "sealbill.verify"} <= set(app.tasks)


def test_the_distributed_path_refuses_sqlite_and_says_why() -> None:
    with pytest.raises(NeedsPostgres, match="needs PostgreSQL"):
        require_postgres("sqlite:///sealbill.sqlite")
    assert conninfo("postgresql+psycopg://u@h:5/db") == "postgresql://u@h:5/db"
