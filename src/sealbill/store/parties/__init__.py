"""Rows of the seller, its customers and their contacts, sealed where they entitle."""
