"""The cycle bench's figures (bench/bench_cycle.py): the summary of a run, and the Markdown
pasted into bench/RESULTS.md."""

from __future__ import annotations

import argparse
import os
import platform
from datetime import date
from typing import Any

from cycle_db import Database


def summarize(args: argparse.Namespace, db: Database, rows: list[dict[str, Any]],
              facts: dict[str, Any],
              library_rate: float, load_before: tuple[float, float, float],
              sink: str) -> dict[str, Any]:
    """The run's figures: the cycle's (meter → ledger verify) wall and CPU; on PostgreSQL
    ``cycle_cpu_s`` is the bench's processes alone and ``cycle_cpu_with_server_s`` adds the
    server's."""
    cycle = [row for row in rows if not row["stage"].startswith("seed")]
    wall, cpu = sum(r["wall_s"] for r in cycle), sum(r["cpu_s"] for r in cycle)
    server = sum(r.get("server_cpu_s", 0.0) for r in cycle)
    invoices = facts["invoices"]
    return {
        "date": date.today().isoformat(), "python": platform.python_version(),
        "nproc": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
        "accounts": args.accounts, "invoices": invoices, "sink": sink,
        "relay": args.relay, "db": db.kind, "db_facts": db.facts,
        "cycle_wall_s": round(wall, 1), "cycle_cpu_s": round(cpu, 1),
        "cycle_server_cpu_s": round(server, 2) if db.server else None,
        "cycle_cpu_with_server_s": round(cpu + server, 1),
        "invoices_per_s": round(invoices / wall, 1),
        "cpu_ms_per_invoice": round(1000 * cpu / invoices, 2),
        "cpu_ms_per_invoice_with_server": round(1000 * (cpu + server) / invoices, 2),
        "library_pipeline_per_s": round(library_rate, 1), "sample": args.sample,
        "peak_rss_mb": max(max(r["peak_rss_mb"], r["children_peak_mb"]) for r in cycle),
        "seed_peak_rss_mb": rows[0]["children_peak_mb"], "stages": rows,
    }


def print_summary(summary: dict[str, Any]) -> None:
    """The Markdown header, per-stage table and cycle line pasted into bench/RESULTS.md."""
    load_before, on_server = summary["load_before"], summary["cycle_server_cpu_s"] is not None
    print(f"date {summary['date']} · Python {summary['python']} · nproc {summary['nproc']} · "
          f"load average before {load_before[0]:.2f} after {os.getloadavg()[0]:.2f} · "
          f"sink {summary['sink']} · relay {summary['relay']} · database {summary['db']}")
    if summary["db_facts"]:
        settings = dict(summary["db_facts"])
        print(f"PostgreSQL {settings.pop('server')} · "
              + " · ".join(f"{k} {v}" for k, v in settings.items() if k != "data_directory"))
    server_head = (" server CPU s |", " ---: |") if on_server else ("", "")
    print(f"\n| stage | wall s | CPU s |{server_head[0]} peak RSS MB | children MB | facts |")
    print(f"| --- | ---: | ---: |{server_head[1]} ---: | ---: | --- |")
    shown = ("stage", "wall_s", "cpu_s", "server_cpu_s", "peak_rss_mb", "children_peak_mb")
    for row in summary["stages"]:
        facts_text = ", ".join(f"{k}={v}" for k, v in row.items() if k not in shown)
        server = f" {row['server_cpu_s']} |" if on_server else ""
        print(f"| {row['stage']} | {row['wall_s']} | {row['cpu_s']} |{server} "
              f"{row['peak_rss_mb']} | {row['children_peak_mb']} | {facts_text} |")
    cpu = f"{summary['cycle_cpu_s']:.1f} s CPU"
    per_invoice = f"{summary['cpu_ms_per_invoice']} ms CPU per invoice"
    if on_server:
        cpu += (f" (+ {summary['cycle_server_cpu_s']:.1f} s of the PostgreSQL server's = "
                f"{summary['cycle_cpu_with_server_s']:.1f} s)")
        per_invoice += f" ({summary['cpu_ms_per_invoice_with_server']} with the server's)"
    rate, library_rate = summary["invoices_per_s"], summary["library_pipeline_per_s"]
    print(f"\ncycle (meter → ledger verify): {summary['invoices']} invoices in "
          f"{summary['cycle_wall_s']:.1f} s wall, {cpu} → {rate:.0f} invoices/s, "
          f"{per_invoice}; library pipeline (Typst → factur-x → EmailMessage → dkimpy → "
          f"smtplib, 2 processes, {summary['sample']} invoices): {library_rate:.0f}/s → "
          f"{rate / library_rate:.1f}×; peak RSS of the cycle {summary['peak_rss_mb']} MB "
          f"(the seed's {summary['seed_peak_rss_mb']} MB)")
