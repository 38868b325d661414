"""Rich renderings of the incident tooling's results for a person at a terminal.

Every value that came from data (names, addresses, operator notes) is escaped before Rich
sees it: a customer called "[red]x" is shown as typed, never interpreted as markup.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sealbill.domain.blast_radius import BlastRadius, RadiusView
from sealbill.incident.radius_report import summary_sentence


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def print_radius(console: Console, radius: BlastRadius) -> None:
    view = radius.effective
    console.print(f"[bold]Blast radius[/] — {radius.messages_in_scope} message(s) in scope, "
                  f"{len(radius.judgements)} recipient(s) judged")
    console.print(_e(summary_sentence(view, radius.messages_in_scope)))
    if radius.as_recorded.exposures != view.exposures:
        console.print(f"[yellow]As recorded at sending time:[/] "
                      f"{_e(summary_sentence(radius.as_recorded, radius.messages_in_scope))} "
                      "(the operator's link corrections change this view)")
    if not view.has_leak:
        return
    console.print(_subjects_table(view))
    console.print(_recipients_table(view))
    console.print(f"member states: {_e(', '.join(view.member_states) or '—')}"
                  + (f"; outside the EEA: {_e(', '.join(view.other_countries))}"
                     if view.other_countries else ""))
    console.print(f"data categories: {_e(', '.join(view.data_categories))}")


def _subjects_table(view: RadiusView) -> Table:
    table = Table("account", "name", "country", "invoices", "sent to (not entitled)",
                  "data categories", title="Affected data subjects")
    for impact in view.subjects:
        table.add_row(_e(impact.subject.reference), _e(impact.subject.name),
                      _e(impact.subject.country), _e(", ".join(impact.invoice_numbers)),
                      _e(", ".join(impact.recipients)), _e(", ".join(impact.data_categories)))
    return table


def _recipients_table(view: RadiusView) -> Table:
    table = Table("unintended recipient", "messages", "accounts whose data it received",
                  title="Unintended recipients")
    for recipient in view.recipients:
        table.add_row(_e(recipient.email), str(len(recipient.message_ids)),
                      _e(", ".join(recipient.account_references)))
    return table


def print_status(console: Console, status: dict[str, Any]) -> None:
    incident, clock = status["incident"], status["clock"]
    console.print(f"[bold]Incident {incident['id']}[/] — {_e(incident['title'])} "
                  f"({_e(incident['status'])})")
    console.print(f"aware at {_e(clock['aware_at'])}; deadline {_e(clock['deadline'])}")
    if clock["notified_at"]:
        late = " [red](late)[/]" if clock["late"] else ""
        console.print(f"notified at {_e(clock['notified_at'])}{late}")
    elif clock["overdue"]:
        console.print(f"[bold red]72-hour deadline passed {_e(clock['remaining'][1:])} ago[/]")
    else:
        console.print(f"[bold]{_e(clock['remaining'])} left[/] to notify")
    console.print(_e(status["radius"]["summary"]))
    decision = status["decision"]
    if decision:
        verb = "notify" if decision["notify"] else "do not notify"
        console.print(f"decision: {verb} — {_e(decision['reason'])}")
    if not status["notification_indicated"]:
        console.print("no disclosure found in scope: no notification indicated")
    elif status["missing"]:
        table = Table("missing from the notification", "how to fill it")
        for item in status["missing"]:
            table.add_row(_e(item["label"]), _e(item["hint"]))
        console.print(table)
    else:
        console.print("[green]the notification has every required field[/]")
    for prompt in status["prompts"]:
        console.print(f"[bold yellow]→ {_e(prompt)}[/]")


def print_register(console: Console, entries: Iterable[dict[str, Any]]) -> None:
    table = Table("id", "title", "status", "aware at", "breach", "subjects", "records",
                  "severity", "notify", "notified at", title="Breach register (Art. 33(5))")
    for e in entries:
        notify = {True: "yes", False: "no", None: "undecided"}[e["decision"]["notify"]]
        table.add_row(str(e["id"]), _e(e["title"]), _e(e["status"]), _e(e["aware_at"]),
                      "yes" if e["effects"]["personal_data_breach"] else "no",
                      str(e["effects"]["subjects"]), str(e["effects"]["records"]),
                      _e(e["severity"]["level"] or "—"), notify, _e(e["notified_at"] or "—"))
    console.print(table)
