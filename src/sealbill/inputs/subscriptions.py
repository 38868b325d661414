"""Subscriptions as they enter sealbill: a start, a plan change, a cancellation."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from sealbill.inputs.models import Code, ExternalId, Model


class SubscriptionIn(Model):
    account: str  # account reference or acc_ public id
    plan: Code
    external_id: ExternalId | None = None
    started_on: date
    trial_days: int | None = Field(None, ge=0, le=365)


class PlanChangeIn(Model):
    plan: Code
    on: date | None = None
    at_period_end: bool = False


class CancelIn(Model):
    on: date | None = None
    at_period_end: bool = True
