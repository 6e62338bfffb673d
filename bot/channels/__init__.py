"""Channel adapters: each turns platform updates into `Inbound` events and delivers outbox rows."""
