"""Telegram's whole edge: the Bot API adapter, the webhook and long polling."""
