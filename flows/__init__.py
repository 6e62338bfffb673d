"""The core: pure conversation and policy logic.

Nothing here does I/O or imports anything of ours outside `flows`: plain data in,
plain decisions out, so every rule is testable in microseconds.
"""
