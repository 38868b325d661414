"""Rows of delivery: plans, the outbox, the ledger, the switches and alerts."""
