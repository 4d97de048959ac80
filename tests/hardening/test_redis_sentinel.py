"""REDIS_URL may name Redis Sentinels (README "Deploying on several machines"): the cache and the Celery broker
find the master through them, and find the new one after a failover, so Redis is not a single point of failure.

A master, a replica and one Sentinel of the test's own, on free ports."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.core.cache import cache

from booking_project.redis_connections import broker_reachable
from sessions_app.models import OutboxEvent
from sessions_app.outbox import outbox_event_publish, outbox_relay
from tests.conftest import BOOK_URL, booking_body, celery_broker_switch
from tests.stack import free_port, wait_for

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")

PROJECT_DIR = Path(__file__).resolve().parents[2]
MASTER_NAME = "bookingmaster"


class SentinelRedis:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.master_port, self.replica_port, self.sentinel_port = free_port(), free_port(), free_port()
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return f"sentinel://127.0.0.1:{self.sentinel_port}/0"

    def _redis(self, name: str, *args: str) -> None:
        self.processes[name] = subprocess.Popen(
            [shutil.which("redis-server"), *args],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        plain = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        # No 5 s wait before the first sync (the default, to gather several replicas into one transfer).
        self._redis("master", "--port", str(self.master_port), "--repl-diskless-sync-delay", "0", *plain)
        self._redis(
            "replica", "--port", str(self.replica_port), "--replicaof", "127.0.0.1", str(self.master_port), *plain
        )
        # The Sentinel learns of replicas from the master's INFO, read at once, then every 10 s: start it once the
        # replica follows, so that it knows of it from its first look.
        wait_for(lambda: self.replica_synced(), timeout=15, what="the replica to follow the master")
        config = self.workdir / "sentinel.conf"
        config.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 500\n"
            f"sentinel failover-timeout {MASTER_NAME} 5000\n"
        )
        self._redis("sentinel", str(config), "--sentinel")
        wait_for(lambda: self.known_replicas() >= 1, timeout=15, what="the Sentinel to know the replica")

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=0.5)

    def replica_synced(self) -> bool:
        try:
            return self.client(self.replica_port).info("replication").get("master_link_status") == "up"
        except redis.RedisError:
            return False

    def known_replicas(self) -> int:
        try:
            return len(self.client(self.sentinel_port).sentinel_slaves(MASTER_NAME))
        except redis.RedisError:
            return 0

    def master_port_now(self) -> int | None:
        try:
            _, port = self.client(self.sentinel_port).sentinel_get_master_addr_by_name(MASTER_NAME)
        except (redis.RedisError, TypeError):
            return None
        return int(port)

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.kill()
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.kill(name)


@pytest.fixture
def sentinel_redis(tmp_path):
    servers = SentinelRedis(tmp_path)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop_all()


@pytest.fixture
def app_through_sentinels(settings, sentinel_redis):
    """This process's cache and broker pointed at the Sentinels, as REDIS_URL=sentinel://... does."""
    from booking_project.celery import app

    settings.REDIS_SENTINEL_MASTER = MASTER_NAME
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": sentinel_redis.url}}
    previous_broker, previous_options = app.conf.CELERY_BROKER_URL, app.conf.CELERY_BROKER_TRANSPORT_OPTIONS
    app.conf.CELERY_BROKER_TRANSPORT_OPTIONS = {**previous_options, "master_name": MASTER_NAME}
    celery_broker_switch(sentinel_redis.url)
    yield sentinel_redis
    app.conf.CELERY_BROKER_TRANSPORT_OPTIONS = previous_options
    celery_broker_switch(previous_broker)


@pytest.mark.django_db(transaction=True)
def test_the_cache_and_the_broker_reach_the_master_through_the_sentinels(
    app_through_sentinels, counselor_api, student, mentor, settings
):
    servers = app_through_sentinels
    master = servers.client(servers.master_port)
    settings.THROTTLE_BOOK_RATE = "30/min"

    # when the counselor books (the throttle counts in the cache; the event is published to the broker)
    response = counselor_api.post(BOOK_URL, booking_body(student=student, mentor=mentor), format="json")

    # then the count and the message are in the master the Sentinel names
    assert response.status_code == 201
    assert any(b":throttle:book:" in key for key in master.keys("*"))
    assert master.llen("celery") == 1
    # and the record that it was handed is there too: the relay marks it published without sending it again
    outbox_relay()
    assert OutboxEvent.objects.get(payload__sessionId=response.json()["sessionId"]).published_at is not None
    assert master.llen("celery") == 1
    assert broker_reachable()


@pytest.mark.django_db(transaction=True)
def test_after_a_failover_the_cache_and_the_broker_follow_the_new_master(app_through_sentinels, counselor, settings):
    servers = app_through_sentinels
    cache.set("before", "the failover")
    assert servers.client(servers.master_port).get(cache.make_key("before")) is not None
    old_master = servers.master_port

    # when the master dies and the Sentinel promotes the replica
    servers.kill("master")
    wait_for(lambda: servers.master_port_now() == servers.replica_port, timeout=30, what="the failover")

    # then, after at most one failed attempt each, the cache and the broker write to the new master
    def cache_works() -> bool:
        from booking_project.redis_connections import redis_circuits_reset

        redis_circuits_reset()
        cache.set("after", "the failover")
        return cache.get("after") == "the failover"

    wait_for(cache_works, timeout=15, what="the cache to reach the new master")
    event = OutboxEvent.objects.create(type="regular_mentoring.session.created", version=1, payload={"sessionId": "x"})
    wait_for(lambda: outbox_event_publish(event=event), timeout=15, what="the broker to reach the new master")
    new_master = servers.client(servers.replica_port)
    assert new_master.llen("celery") == 1
    assert servers.master_port_now() != old_master


def _settings_of(environment: dict[str, str], expression: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.update(DJANGO_SETTINGS_MODULE="booking_project.settings", **environment)
    code = f"import django; django.setup(); from django.conf import settings as s; print({expression})"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60
    )


def test_redis_url_naming_sentinels_needs_the_masters_name():
    result = _settings_of({"REDIS_URL": "sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379"}, "1")

    assert result.returncode != 0
    assert "set REDIS_SENTINEL_MASTER" in result.stderr


def test_redis_url_naming_sentinels_configures_the_broker_and_the_cache_for_them():
    result = _settings_of(
        {"REDIS_URL": "sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379", "REDIS_SENTINEL_MASTER": "booking"},
        "s.CELERY_BROKER_URL, s.CELERY_BROKER_TRANSPORT_OPTIONS['master_name'], s.CACHES['default']['LOCATION']",
    )

    assert result.returncode == 0, result.stderr
    url = "sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379"
    assert result.stdout.strip() == f"{url} booking {url}"
