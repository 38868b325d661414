"""Validation at the boundaries: files, records and command arguments become checked values.

Every function here returns problems as text naming the field (callers put the file and the
record in front), or raises :class:`~sealbill.inputs.problems.InputRejected` with all of them;
nothing here writes. The application layer calls the same models for single-record
create/update (``AccountIn.model_validate({...})``, ``UsageIn.model_validate({...})``).
"""
