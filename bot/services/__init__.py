"""Use cases: the ticket desk and its SLA watchdog and threads, surveys, data rights (privacy), digest, purchases, demo, export."""
