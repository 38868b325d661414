"""Rows of incidents: their timeline, evidence and containment."""
