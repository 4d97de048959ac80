"""Runs the Procfile's processes as deployed, for the tests' stack (tests/stack.py) and the benchmark (bench/).

Each process is one Procfile line run exactly as written (`bash -c "exec <line>"`, so `${WORKER_CONCURRENCY:-200}`
and the like expand as under honcho), with only the environment changed: ports, the database, the Redis URL,
short clocks. What runs in the tests and the bench is then what production runs, and a change to the Procfile
(a new queue, another worker) reaches both at once.

Each started process gets a name (the Procfile line's, or another for a second instance of the same line, e.g.
`beat-2`), a process group of its own (so a stop or a SIGKILL reaches the children too: gunicorn's workers,
Celery's pool) and a log file `<name>.log` in the log directory. The stack's own Redis server is started here
too, so a test can stop it mid-run. `stop_all()` stops everything the launcher started, and nothing else.
"""

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent
PROCFILE = ROOT / "Procfile"

# The line a `redis` process runs: a throwaway server (nothing saved) on the port of the environment's REDIS_URL.
REDIS_COMMAND = "{redis_server} --bind 127.0.0.1 --port {port} --save '' --appendonly no"


def free_port() -> int:
    """A loopback port nobody listens on now (the OS's pick), for one of the stack's servers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def procfile_commands(path: Path = PROCFILE) -> dict[str, str]:
    """The Procfile's lines by name, as written (variables unexpanded)."""
    commands = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = command.strip()
    return commands


class Launcher:
    """Starts, stops and kills named processes, each a Procfile line (or the Redis server) under `env`.

    `start(line)` waits until the process is ready when the launcher knows how to tell (see `_ready`), so a
    caller may use it at once; `start(line, name=...)` runs a second instance of a line beside the first, and
    `env=` gives one process extra variables. `stop(name)` asks politely (SIGTERM to the group, SIGKILL after
    `stop_timeout`), `kill(name)` does not ask (SIGKILL: what an OOM killer or a pulled plug does).
    """

    def __init__(self, *, env: dict[str, str], log_dir: Path, stop_timeout: float = 20.0):
        # The Procfile names bare `python`, `celery`, `gunicorn`: this interpreter's environment (.venv) runs them.
        bin_dir = str(Path(sys.executable).parent)
        self.env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}", "PYTHONUNBUFFERED": "1"}
        self.log_dir = log_dir
        self.stop_timeout = stop_timeout
        self.commands = procfile_commands()
        self.processes: dict[str, subprocess.Popen] = {}
        self.started_at: dict[str, float] = {}  # wall-clock time of each name's latest start
        self._log_offsets: dict[str, int] = {}  # where each name's log stood at its latest start

    # --- processes ---

    def start(
        self, line: str, *, name: str | None = None, env: dict[str, str] | None = None, wait: bool = True
    ) -> subprocess.Popen:
        """Run the Procfile's `line` as `name` (default: the line's name); ready when this returns (`wait`)."""
        name = name or line
        command = self._redis_command() if line == "redis" else self.commands[line]
        process = self._spawn(name, command, env=env)
        if wait:
            self._wait_ready(name, line, process, env={**self.env, **(env or {})})
        return process

    def start_together(self, *lines: str) -> None:
        """Start several lines at once, then wait until each is ready: their imports overlap, so the stack is up
        sooner than one line after another."""
        started = [(line, self.start(line, wait=False)) for line in lines]
        for line, process in started:
            self._wait_ready(line, line, process, env=self.env)

    def stop(self, *names: str) -> None:
        """SIGTERM to each named process group at once, then wait for each (SIGKILL after `stop_timeout`).
        A name not running is skipped, so a `finally:` may stop what may already be gone."""
        stopping = [(name, self.processes.pop(name)) for name in names if name in self.processes]
        for _, process in stopping:
            _signal_group(process, signal.SIGTERM)
        for _, process in stopping:
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=10)

    def kill(self, name: str) -> None:
        """SIGKILL the named process group, no goodbye: tasks in flight stay unacknowledged in the broker."""
        process = self.processes.pop(name)
        _signal_group(process, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        """Stop everything started here: the processes first, then Redis (which they would otherwise spend their
        shutdown reconnecting to)."""
        self.stop(*[name for name in self.processes if name != "redis"])
        self.stop("redis")

    def running(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    # --- the stack's own Redis server ---

    @property
    def redis_port(self) -> int:
        return urlsplit(self.env["REDIS_URL"]).port or 6379

    def start_redis(self) -> None:
        """Start (or start again) the Redis server of REDIS_URL: empty, as after a restart without persistence."""
        self.start("redis")

    def stop_redis(self) -> None:
        self.stop("redis")

    # --- logs ---

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log(self, name: str, *, since_start: bool = False) -> bytes:
        """What the named process wrote (stdout and stderr), across restarts; or only since its latest start."""
        path = self.log_path(name)
        if not path.exists():
            return b""
        with path.open("rb") as log:
            log.seek(self._log_offsets.get(name, 0) if since_start else 0)
            return log.read()

    # --- CPU accounting (the bench) ---

    def cpu_seconds(self, name: str) -> float:
        """CPU time (user + system) used so far by the live processes of one started name (its process group)."""
        process = self.processes.get(name)
        return _cpu_seconds(lambda pgrp, cmdline: process is not None and pgrp == process.pid)

    # --- inside ---

    def _redis_command(self) -> str:
        redis_server = shlex.quote(shutil.which("redis-server") or "redis-server")
        return REDIS_COMMAND.format(redis_server=redis_server, port=self.redis_port)

    def _spawn(self, name: str, command: str, *, env: dict[str, str] | None) -> subprocess.Popen:
        if self.running(name):
            raise RuntimeError(f"{name} is already running: stop it first, or start the line under another name")
        path = self.log_path(name)
        self._log_offsets[name] = path.stat().st_size if path.exists() else 0
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as log:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=ROOT,
                env={**self.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a process group of its own: signals reach its children too
            )
        self.processes[name] = process
        self.started_at[name] = time.time()
        return process

    def _wait_ready(self, name: str, line: str, process: subprocess.Popen, *, env: dict[str, str]) -> None:
        ready = _ready(line, env)
        if ready is None:
            return

        def up() -> bool:
            if process.poll() is not None:
                tail = self.log(name, since_start=True).decode(errors="replace")[-2000:]
                raise ProcessExited(f"{name} exited with {process.returncode} before it was ready:\n{tail}")
            return ready(self.log(name, since_start=True))

        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not up():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was not ready within {READY_TIMEOUT_SECONDS} s: see {self.log_path(name)}")
            time.sleep(0.1)


class ProcessExited(RuntimeError):
    """A started process died before it was ready (its log's tail is in the message)."""


READY_TIMEOUT_SECONDS = 60


def _ready(line: str, env: dict[str, str]) -> Callable[[bytes], bool] | None:
    """How to tell that a process of `line` is ready, from its log since it started or its port; None: at once.
    Beat has no sign worth waiting for: it sends its first tasks within a second, and nothing waits on it."""
    if line in ("worker", "notifier"):
        return lambda log: b" ready." in log  # Celery's "celery@host ready." once it consumes
    if line == "web":
        return lambda log: _http_answers(f"http://127.0.0.1:{env.get('WEB_PORT', '8000')}/metrics")
    if line == "sandbox":
        return lambda log: port_answers(int(env.get("SANDBOX_PORT", "8090")))
    if line == "redis":
        return lambda log: port_answers(urlsplit(env["REDIS_URL"]).port or 6379)
    return None


def _http_answers(url: str) -> bool:
    """Any HTTP answer, even 4xx: a gunicorn worker has Django loaded (the port alone answers while they boot)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass  # already gone (it died, or a test killed it)


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
