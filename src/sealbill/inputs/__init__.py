"""Validation at the boundaries: files, records and command arguments become checked values.

The only validation layer: the file imports, the CLI, the HTTP API and the web console (through
the application layer, :func:`sealbill.inputs.models.parse`) read every record with the models
here, one module per subject — :mod:`~sealbill.inputs.organizations`,
:mod:`~sealbill.inputs.accounts` (accounts and contacts), :mod:`~sealbill.inputs.catalog`,
:mod:`~sealbill.inputs.subscriptions`, :mod:`~sealbill.inputs.usage` — so a value is accepted
or refused, naming the same field with the same message, whichever door it came in by. The
checks they share are in :mod:`~sealbill.inputs.text` (NFC, control/bidi/invisible
characters), :mod:`~sealbill.inputs.secrets` (card numbers, IBANs),
:mod:`~sealbill.inputs.fields`, :mod:`~sealbill.inputs.files` and :mod:`~sealbill.inputs.urls`.
Problems are text naming the field (callers put the file and the record in front), or
:class:`~sealbill.inputs.problems.InputRejected` with all of them; nothing here writes.
"""
