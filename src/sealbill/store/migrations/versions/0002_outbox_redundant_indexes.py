"""outbox, outbox_recipients: drop two indexes that another index of the table duplicates

``outbox (envelope_id)`` duplicates the unique constraint on ``envelope_id`` (same column,
same lookups); ``outbox_recipients (run_id)`` is the leading column of the unique
(run_id, invoice_id, contact_id) key and of ``ix_outbox_recipients_run_contact``. Each cost
an index entry on every outbox row the plan writes, or every claim the send stage writes,
and served no lookup the other does not (the SQLite query plans of the send and plan
statements are unchanged). ``outbox (run_id)`` stays: without it SQLite, which keeps no
statistics here, takes the organization's index for ``organization_id = ? AND run_id = ?``
(a tie with ``ix_outbox_run_status``) and walks every outbox row of the organization.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08 01:05:00
"""

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_DROPPED = (("outbox", "ix_outbox_envelope_id", "envelope_id"),
            ("outbox_recipients", "ix_outbox_recipients_run_id", "run_id"))


def upgrade() -> None:
    for table, name, _column in _DROPPED:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for table, name, column in _DROPPED:
        op.create_index(name, table, [column], unique=False)
