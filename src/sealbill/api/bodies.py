"""Request bodies of the action routes (the resource bodies are in :mod:`sealbill.inputs`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from sealbill.inputs.accounts import Role
from sealbill.inputs.models import Model

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]


class ChangeAddressIn(Model):
    email: str


class SetRoleIn(Model):
    account: str
    role: Role
    from_role: Role | None = None


class UnlinkIn(Model):
    account: str
    role: Role | None = None


class VouchIn(Model):
    account: str
    reason: Reason


class VerifyIn(Model):
    account: str
    link_base: str | None = None


class ConfirmCodeIn(Model):
    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=200)]


class RunIn(Model):
    period: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}$")]
    dry_run: bool = False


class QueueRunIn(Model):
    period: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}$")]


class ApproveIn(Model):
    reason: Reason


class SetAsideIn(Model):
    invoice: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                              max_length=64)]
    reason: Reason


class RetryIn(Model):
    reason: Reason
    invoice: Annotated[str | None, StringConstraints(strip_whitespace=True, min_length=1,
                                                     max_length=64), Field(
        description="The invoice number of the message to queue again (a set-aside or failed "
                    "one, or a sent one whose bounced contact was corrected since: then only "
                    "the corrected address gets it); absent: every failed message of the "
                    "run.")] = None


class PlanRunIn(Model):
    replan: bool = False
    policy: dict[str, Any] | None = Field(None, description="Delivery policy overrides, e.g. "
                                          '{"first_cycle": "hold"}.')


class ApplyIn(Model):
    catalog: Annotated[str, Field(description="The catalog YAML (metrics, plans).")]
    dry_run: bool = False


class WebhookIn(Model):
    url: Annotated[str, StringConstraints(max_length=2000)]
    events: list[str] = Field(min_length=1, description='Event types, or ["*"].')


class CreditNoteIn(Model):
    reason: Reason
    amount: Annotated[str | None, Field(description="Major units excluding VAT, as a string; "
                                        "the whole invoice when absent.")] = None


class VoidInvoiceIn(Model):
    reason: Reason
