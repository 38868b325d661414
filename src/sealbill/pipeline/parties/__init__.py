"""The seller and its customers: organizations, account imports, address verification."""
