"""Incident response: what leaked, to whom, and the operator's steps on the clock."""
