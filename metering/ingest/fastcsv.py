"""PostgreSQL fast path for vendor CSV files (filled in below when available)."""


def available() -> bool:
    return False
