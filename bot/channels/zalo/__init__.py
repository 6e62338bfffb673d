"""Zalo's whole edge: the OA API adapter and the signed webhook."""
