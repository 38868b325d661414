"""An authenticated approver for tests that drive ``run approve`` through the CLI.

The four-eyes rule is by identity: approving needs an operator's API key, never a free-text
name. This creates the operator and an ``approver`` key through the application layer, as
``sealbill operators create`` and ``sealbill keys create`` do.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from sealbill.app import operators
from sealbill.app.context import local_actor


def approver_key(engine: Engine, org_id: int, email: str = "reviewer@acme-ops.fr") -> str:
    """A fresh ``approver`` key (``sbk_…``) of a new operator ``email`` in ``org_id``."""
    admin = local_actor()
    operators.create_operator(engine, admin, email, email.split("@")[0],
                              "a long enough password")
    return str(operators.create_key(engine, admin, org_id, email, "approver")["key"])
