"""Use cases: the ticket desk, surveys, privacy, digest, purchases, demo, export."""
