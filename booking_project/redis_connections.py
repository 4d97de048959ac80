"""How the app reaches Redis, the Celery broker and the cache, and how it lives without it.

Redis is needed to hand work to the workers, never to answer a counselor: a booking is stored in PostgreSQL
and its event published later by the outbox relay when the broker was unreachable (DESIGN.md). So every call
to Redis from a request has timeouts of a fraction of a second (REDIS_CONNECT_TIMEOUT_SECONDS,
REDIS_SOCKET_TIMEOUT_SECONDS), and a failed call opens a *circuit*: for REDIS_RETRY_AFTER_SECONDS this
process does not try that Redis again, so requests during an outage do not each pay a timeout.

`REDIS_URL` is a plain `redis://` URL or, for a Redis that fails over, its Sentinels: `sentinel://host1:26379;
sentinel://host2:26379;sentinel://host3:26379` (kombu's form) with `REDIS_SENTINEL_MASTER` naming the master.
Celery's broker (kombu's sentinel transport) and the cache (below) both ask the Sentinels where the master is.
"""

import logging
import re
import threading
import time
from urllib.parse import unquote, urlsplit

import redis
from django.conf import settings
from redis.sentinel import Sentinel

logger = logging.getLogger(__name__)

SENTINEL_SCHEME = "sentinel://"
SENTINEL_DEFAULT_PORT = 26379


def redis_url_is_sentinel(url: str) -> bool:
    return url.strip().startswith(SENTINEL_SCHEME)


def sentinel_master(urls: list[str], **connection_options) -> redis.Redis:
    """A client of the master the Sentinels at `urls` name (REDIS_SENTINEL_MASTER); it asks them again after
    a failover. As in kombu, the first URL's password and database number are the master's; the Sentinels'
    own password, if they have one, is REDIS_SENTINEL_PASSWORD."""
    parts = [urlsplit(url.strip()) for url in urls if url.strip()]
    first = parts[0]
    options = dict(connection_options)
    options["db"] = int(first.path.strip("/") or 0)
    if first.password:
        options["password"] = unquote(first.password)
    if first.username:
        options["username"] = unquote(first.username)
    sentinel_options = {k: v for k, v in connection_options.items() if k.startswith("socket_")}
    if settings.REDIS_SENTINEL_PASSWORD:
        sentinel_options["password"] = settings.REDIS_SENTINEL_PASSWORD
    sentinels = Sentinel(
        [(part.hostname, part.port or SENTINEL_DEFAULT_PORT) for part in parts],
        sentinel_kwargs=sentinel_options,
        **options,
    )
    return sentinels.master_for(settings.REDIS_SENTINEL_MASTER, redis_class=redis.Redis)


def redis_timeouts() -> dict[str, float]:
    return {
        "socket_connect_timeout": settings.REDIS_CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": settings.REDIS_SOCKET_TIMEOUT_SECONDS,
    }


class RedisCircuit:
    """Remembers, in this process, that a Redis just failed: until REDIS_RETRY_AFTER_SECONDS have passed the
    callers skip it (and do what they do without it) instead of each waiting for a timeout. The first call
    after that tries Redis again."""

    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._open_until = 0.0

    def closed(self) -> bool:
        """Whether Redis may be tried now."""
        return time.monotonic() >= self._open_until

    def trip(self, error: object) -> None:
        with self._lock:
            was_closed = self.closed()
            self._open_until = time.monotonic() + settings.REDIS_RETRY_AFTER_SECONDS
        if was_closed:
            logger.warning(
                "redis.unavailable",
                extra={
                    "redis": self.name,
                    "error": repr(error),
                    "retryAfterSeconds": settings.REDIS_RETRY_AFTER_SECONDS,
                },
            )

    def reset(self) -> None:
        with self._lock:
            self._open_until = 0.0


_circuits: dict[str, RedisCircuit] = {}
_circuits_lock = threading.Lock()


def redis_circuit(url: str) -> RedisCircuit:
    """The circuit of the Redis at `url`, one per URL in the process: the cache and the broker share it when
    they are the same server (REDIS_URL, by default), so once a request has found Redis down, its event is left
    to the outbox relay at once instead of waiting for a second timeout."""
    with _circuits_lock:
        if url not in _circuits:
            _circuits[url] = RedisCircuit(re.sub(r"//[^@/]*@", "//", url))  # no password in the logs
        return _circuits[url]


def redis_circuits_reset() -> None:
    with _circuits_lock:
        for circuit in _circuits.values():
            circuit.reset()


def broker_circuit() -> RedisCircuit:
    """The circuit of the broker this process publishes to."""
    from booking_project.celery import app

    return redis_circuit(app.conf.broker_url)


def broker_reachable() -> bool:
    """Whether the Celery broker answers a PING now, through the same connection settings (timeouts,
    Sentinels) as publishing; at most a few tenths of a second when it does not."""
    from booking_project.celery import app

    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=0)
            connection.default_channel.client.ping()
    except Exception:  # noqa: BLE001 - any failure to reach it means "down"
        return False
    return True
