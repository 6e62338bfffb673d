"""Outgoing webhooks (Standard Webhooks v1): signing, the events, the delivery worker."""
