"""The application layer: every use case of sealbill, called by the CLI and the HTTP API.

One module per area (organizations, catalog, accounts, contacts, subscriptions, usage, runs,
invoices, operators, audit). A use case is a function taking plain inputs (or a Pydantic model
of :mod:`sealbill.inputs`), an engine and the :class:`~sealbill.app.context.Actor` doing it;
it checks the actor's role, runs in one transaction, appends an audit entry for every change in
that same transaction, and returns plain data. Entrypoints (``cli/``, ``api/``) only translate
arguments and errors; no business rule lives there.
"""

# Every process that uses the application layer queues the stages' webhooks in their own
# transactions (see run_events).
from sealbill.app import run_events  # noqa: F401
