"""Database connection handling shared by every app."""

from django.db import connection


def connection_give_back() -> None:
    """Return this thread's database connection to the pool for the length of a slow call to a provider
    (seconds), so that a worker with a hundred threads waiting on providers needs only a few connections. The
    next query takes one again. Without a pool (or inside a transaction, which a provider call never is) the
    connection stays."""
    if getattr(connection, "pool", None) is not None and not connection.in_atomic_block:
        connection.close()
