"""The real stack for the benchmark, on loopback and free ports: a Redis server of its own, then the Procfile's
web, worker, beat and sandbox lines run as written (so the bench measures what production runs), each in its
own process group with its output in a log file. Everything started here is stopped by `Stack.stop()`.

PostgreSQL is the local server (DATABASE_URL's host); the bench gives the stack a database of its own.
"""

import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_commands(path: Path = ROOT / "Procfile") -> dict[str, str]:
    commands = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = command.strip()
    return commands


def wait_until(predicate: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - not up yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


class Stack:
    def __init__(self, *, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}
        self.web_url = f"http://127.0.0.1:{env['WEB_PORT']}"
        self.sandbox_url = f"http://127.0.0.1:{env['SANDBOX_PORT']}"

    def _spawn(self, name: str, command: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def start_redis(self) -> None:
        port = self.env["BENCH_REDIS_PORT"]
        self._spawn(
            "redis",
            f"{shlex.quote(shutil.which('redis-server'))} --bind 127.0.0.1 --port {port} --save '' --appendonly no",
        )
        wait_until(lambda: self.redis().ping(), timeout=10, what="redis-server")

    def redis(self):
        import redis

        return redis.Redis.from_url(self.env["REDIS_URL"], socket_timeout=2)

    def start(self, names: list[str]) -> None:
        commands = procfile_commands()
        for name in names:
            self._spawn(name, commands[name])
        if "sandbox" in names:
            wait_until(
                lambda: requests.get(f"{self.sandbox_url}/_sandbox/config", timeout=1).ok, timeout=30, what="sandbox"
            )
        if "web" in names:
            wait_until(lambda: requests.get(f"{self.web_url}/metrics", timeout=2).ok, timeout=60, what="gunicorn")
        if "worker" in names:
            wait_until(
                lambda: b"ready" in (self.log_dir / "worker.log").read_bytes(), timeout=60, what="the Celery worker"
            )

    def stop(self, names: list[str] | None = None) -> None:
        names = list(self.processes) if names is None else names
        for name in names:
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for name in names:
            process = self.processes.pop(name, None)
            if process is None:
                continue
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)

    def cpu_seconds(self, name: str) -> float:
        """CPU time (user + system) used so far by the live processes of one started line (its process group)."""
        process = self.processes.get(name)
        return _cpu_seconds(lambda pgrp, cmdline: process is not None and pgrp == process.pid)

    def sandbox_configure(self, **config: Any) -> None:
        requests.post(f"{self.sandbox_url}/_sandbox/config", json=config, timeout=5).raise_for_status()

    def sandbox_meetings(self) -> list[dict]:
        return requests.get(f"{self.sandbox_url}/_sandbox/meetings", timeout=10).json()["meetings"]


def database_cpu_seconds(database: str) -> float:
    """CPU time used so far by the PostgreSQL backends connected to `database` (their title names it)."""
    marker = f" {database} ".encode()
    return _cpu_seconds(lambda pgrp, cmdline: cmdline.startswith(b"postgres: ") and marker in cmdline)


def _cpu_seconds(select: Callable[[int, bytes], bool]) -> float:
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if select(int(fields[2]), cmdline):
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
