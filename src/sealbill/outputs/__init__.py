"""Files sealbill writes for the operator: never through a link the operator did not name,
and CSV cells a spreadsheet reads as text."""
