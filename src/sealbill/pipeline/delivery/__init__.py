"""Plan → guard → send → ledger: each document to the recipients entitled to it."""
