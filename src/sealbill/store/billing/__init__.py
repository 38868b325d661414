"""Rows of billing: catalog, usage, invoices, balances, exchange rates."""
