"""How many accounts each address receives for, over every envelope of a plan and of the
previous one, counted by the database in a temporary table (the plan is judged a group of
accounts at a time: ``pipeline/delivery/plan_judge.py``; no process holds every address).

Each (plan side, lower-cased address, account, place) of an envelope's recipients is inserted
as its group is read; :meth:`FanInCount.result` then asks for the addresses over the maximum
fan-in, those grown since the previous plan, and the fan-in of the addresses named — ordered
as :func:`sealbill.domain.delivery_plan.evaluate` orders them: most accounts first, then the
address met first in the plan (its envelope's id, then its place among the recipients).

Invariants: the table is the transaction's own (``TEMPORARY``), emptied when created and
dropped by :meth:`FanInCount.close`; addresses are lower-cased by Python (``str.lower``), as
the domain compares them, never by SQL's ``lower``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.delivery_plan import DeliveryPolicy, PlannedEnvelope
from sealbill.domain.plan_tally import FanIn
from sealbill.store.delivery.plan_writes import driver_executemany

NOW, BEFORE = 0, 1  # the plan judged, the previous one
_NAME = "sealbill_plan_fan_in"
_SLOTS = 1 << 20  # recipient places per envelope in ``place``: envelope id x _SLOTS + index
_SAMPLE = 20

_table = sa.Table(_NAME, sa.MetaData(), sa.Column("side", sa.Integer),
                  sa.Column("email", sa.String), sa.Column("account_id", sa.BigInteger),
                  sa.Column("place", sa.BigInteger), prefixes=["TEMPORARY"])

_COLUMNS = ("side", "email", "account_id", "place")
_INSERT_SQLITE = f"INSERT INTO {_NAME} (side, email, account_id, place) VALUES (?, ?, ?, ?)"

_PER_ADDRESS = f"""
SELECT email, COUNT(DISTINCT account_id) AS accounts, MIN(place) AS first
FROM {_NAME} WHERE side = {{side}} GROUP BY email"""
_OVER_MAX = f"""
SELECT email, accounts FROM ({_PER_ADDRESS.format(side=NOW)}) AS now
WHERE accounts > :most"""
_GROWN = f"""
SELECT now.email, COALESCE(before.accounts, 0) AS before, now.accounts, now.first
FROM ({_PER_ADDRESS.format(side=NOW)}) AS now
LEFT JOIN ({_PER_ADDRESS.format(side=BEFORE)}) AS before ON before.email = now.email
WHERE now.accounts - COALESCE(before.accounts, 0) > :growth"""


class FanInCount:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {_NAME} (side INTEGER "
                             "NOT NULL, email VARCHAR(254) NOT NULL, account_id BIGINT "
                             "NOT NULL, place BIGINT NOT NULL)"))
        conn.execute(sa.delete(_table))

    def add(self, side: int, placed: Iterable[tuple[int, PlannedEnvelope]]) -> None:
        rows = [(side, email.lower(), env.account_id, place * _SLOTS + index)
                for place, env in placed for index, (_, email) in enumerate(env.recipients)]
        if not rows:
            return
        if self._conn.dialect.name == "postgresql":
            self._conn.execute(sa.insert(_table), [dict(zip(_COLUMNS, row, strict=True))
                                                   for row in rows])
            return
        driver_executemany(self._conn, _INSERT_SQLITE, rows)  # SQLite: no per-row processing

    def result(self, policy: DeliveryPolicy, addresses: Sequence[str]) -> FanIn:
        conn = self._conn
        most = {"most": policy.max_fan_in}
        over_count = conn.execute(sa.text(f"SELECT COUNT(*) FROM ({_OVER_MAX}) AS o"),
                                  most).scalar_one()
        over = conn.execute(sa.text(
            f"{_OVER_MAX} ORDER BY accounts DESC, first LIMIT {_SAMPLE}"), most).all()
        growth = {"growth": policy.fan_in_growth}
        grown_count = conn.execute(sa.text(f"SELECT COUNT(*) FROM ({_GROWN}) AS g"),
                                   growth).scalar_one()
        grown = conn.execute(sa.text(
            f"{_GROWN} ORDER BY now.accounts DESC, now.first LIMIT {_SAMPLE}"), growth).all()
        return FanIn(
            (int(over_count), tuple({"email": str(r[0]), "accounts": int(r[1])}
                                    for r in over)),
            (int(grown_count), tuple({"email": str(r[0]), "before": int(r[1]),
                                      "now": int(r[2])} for r in grown)),
            self._receives_for(addresses))

    def _receives_for(self, addresses: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(addresses), 500):
            chunk = list(addresses[start:start + 500])
            found.update((str(e), int(n)) for e, n in self._conn.execute(
                sa.select(_table.c.email, sa.func.count(sa.distinct(_table.c.account_id)))
                .where(_table.c.side == NOW, _table.c.email.in_(chunk))
                .group_by(_table.c.email)))
        return found

    def close(self) -> None:
        schema = "pg_temp" if self._conn.dialect.name == "postgresql" else "temp"
        self._conn.execute(sa.text(f"DROP TABLE IF EXISTS {schema}.{_NAME}"))

