"""The HTTP surface: the shop's API, the agent page, connection limits."""
