"""Incident paperwork: the dossier of an incident and the drafts, status and register built
from it (the blast radius itself is computed in :mod:`sealbill.domain.blast_radius`)."""
