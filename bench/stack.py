"""The real stack for the benchmark, on loopback and free ports: the launcher (launcher.py, shared with the tests'
stack) runs a Redis server of its own and the Procfile's web, worker, notifier, beat and sandbox lines as written,
so the bench measures what production runs. Everything started here is stopped by `Stack.stop_all()`.

PostgreSQL is the local server (DATABASE_URL's host); the bench gives the stack a database of its own.
"""

from pathlib import Path
from typing import Any

import requests

from launcher import Launcher, database_cpu_seconds, procfile_commands  # noqa: F401 - run.py imports them from here


class Stack(Launcher):
    """The launcher, plus what the bench asks of the running stack: its URLs, the sandbox, the broker."""

    def __init__(self, *, env: dict[str, str], log_dir: Path):
        super().__init__(env=env, log_dir=log_dir)
        self.web_url = f"http://127.0.0.1:{env['WEB_PORT']}"
        self.sandbox_url = f"http://127.0.0.1:{env['SANDBOX_PORT']}"

    def redis(self):
        import redis

        return redis.Redis.from_url(self.env["REDIS_URL"], socket_timeout=2)

    def sandbox_configure(self, **config: Any) -> None:
        requests.post(f"{self.sandbox_url}/_sandbox/config", json=config, timeout=5).raise_for_status()

    def sandbox_injected(self) -> dict:
        """What the sandbox failed or lost on purpose so far (`answersLost`, `failed`, by operation)."""
        return requests.get(f"{self.sandbox_url}/_sandbox/injected", timeout=10).json()

    def sandbox_meetings(self) -> list[dict]:
        return requests.get(f"{self.sandbox_url}/_sandbox/meetings", timeout=10).json()["meetings"]
