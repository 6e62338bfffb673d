"""Carrying out decisions: the one executor, the consent notice, the sender."""
