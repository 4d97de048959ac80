"""The cache: Django's Redis cache, reaching Sentinels too, and failing open.

Nothing the cache holds is needed to answer a request (the throttles' counters are its only use today, and
they fall back to counting in the process: booking_project/throttles.py). So while Redis is unreachable a
read is a miss and a write is dropped, after a timeout of a fraction of a second at most once per
REDIS_RETRY_AFTER_SECONDS (booking_project.redis_connections).
"""

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import RedisError

from booking_project.redis_connections import redis_circuit, redis_url_is_sentinel, sentinel_master


class SentinelAwareRedisCacheClient(RedisCacheClient):
    """Django's client, with `sentinel://` locations resolved to the master the Sentinels name."""

    def _get_connection_pool(self, write):
        if not redis_url_is_sentinel(self._servers[0]):
            return super()._get_connection_pool(write)
        if "master" not in self._pools:
            self._pools["master"] = sentinel_master(self._servers, **self._pool_options).connection_pool
        return self._pools["master"]


class ResilientRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SentinelAwareRedisCacheClient
        self.circuit = redis_circuit(server if isinstance(server, str) else ";".join(server))

    def redis_client(self):
        """The Redis client behind the cache, for a caller that needs a command the cache API lacks (an atomic
        count). Its errors are the caller's to handle, and `circuit` says whether to try at all."""
        return self._cache.get_client(write=True)

    def _guarded(self, call, fallback):
        if not self.circuit.closed():
            return fallback
        try:
            return call()
        except RedisError as error:
            self.circuit.trip(error)
            return fallback

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        add = super().add
        return self._guarded(lambda: add(key, value, timeout, version), False)

    def get(self, key, default=None, version=None):
        get = super().get
        return self._guarded(lambda: get(key, default, version), default)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        set_ = super().set
        return self._guarded(lambda: set_(key, value, timeout, version), None)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        touch = super().touch
        return self._guarded(lambda: touch(key, timeout, version), False)

    def delete(self, key, version=None):
        delete = super().delete
        return self._guarded(lambda: delete(key, version), False)

    def get_many(self, keys, version=None):
        get_many = super().get_many
        return self._guarded(lambda: get_many(keys, version), {})

    def has_key(self, key, version=None):
        has_key = super().has_key
        return self._guarded(lambda: has_key(key, version), False)

    def incr(self, key, delta=1, version=None):
        incr = super().incr
        missing = object()
        value = self._guarded(lambda: incr(key, delta, version), missing)
        if value is missing:
            raise ValueError(f"Key {key!r} not found: the cache is unavailable.")
        return value

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        set_many = super().set_many
        return self._guarded(lambda: set_many(data, timeout, version), list(data))

    def delete_many(self, keys, version=None):
        delete_many = super().delete_many
        return self._guarded(lambda: delete_many(keys, version), None)

    def clear(self):
        clear = super().clear
        return self._guarded(clear, False)
