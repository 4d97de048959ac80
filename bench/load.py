"""A lean HTTP/1.1 load generator on asyncio streams (keep-alive, one connection per client): it shares the two
cores with the system it measures, so it spends as little CPU per request as it can.

Closed loop (`closed_loop`): `concurrency` clients, each sends its next booking when the previous one answered
(`closed_loop_reads`: the same with GETs, for the poll).
Open loop (`open_loop`): bookings start on a fixed schedule (`rate` per second) whatever the answers do.
"""

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    # (session id, wall-clock time of the 201) for each booking made
    booked: list[tuple[str, float]] = field(default_factory=list)
    wall_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 201) + len(self.errors)


class Connection:
    def __init__(self, url: str, token: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.token = token
        self.reader = self.writer = None

    async def post(self, path: str, body: dict) -> tuple[int, bytes]:
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Token {self.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        return await self._exchange(head + payload)

    async def get(self, path: str) -> tuple[int, bytes]:
        head = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Token {self.token}\r\n\r\n"
        return await self._exchange(head.encode())

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            self.writer.write(request)
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("the server closed the connection")
            status = int(status_line.split()[1])
            length, close = 0, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            body_bytes = await self.reader.readexactly(length) if length else b""
        except BaseException:
            await self.close()
            raise
        if close:
            await self.close()
        return status, body_bytes

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None


BOOK_PATH = "/api/counselor/sessions/book"


async def _book(connection: Connection, body: dict, result: Result) -> None:
    started = time.perf_counter()
    try:
        status, answer = await connection.post(BOOK_PATH, body)
    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as error:
        result.errors.append(type(error).__name__)
        return
    result.latencies_ms.append((time.perf_counter() - started) * 1000)
    result.statuses[status] = result.statuses.get(status, 0) + 1
    if status == 201:
        result.booked.append((json.loads(answer)["sessionId"], time.time()))
    elif len(result.errors) < 5:
        result.errors.append(f"{status}: {answer[:200].decode(errors='replace')}")


async def _read(connection: Connection, path: str, result: Result) -> None:
    started = time.perf_counter()
    try:
        status, answer = await connection.get(path)
    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as error:
        result.errors.append(type(error).__name__)
        return
    result.latencies_ms.append((time.perf_counter() - started) * 1000)
    # A read answers 200; counted under 201 so that `failed` means the same for both kinds of phase.
    result.statuses[201 if status == 200 else status] = result.statuses.get(201 if status == 200 else status, 0) + 1
    if status != 200 and len(result.errors) < 5:
        result.errors.append(f"{status}: {answer[:200].decode(errors='replace')}")


async def _closed_loop_reads(url, token, next_path, concurrency, seconds, warmup) -> Result:
    return await _closed_loop_of(_read, url, token, next_path, concurrency, seconds, warmup)


async def _closed_loop(url, token, next_body, concurrency, seconds, warmup) -> Result:
    return await _closed_loop_of(_book, url, token, next_body, concurrency, seconds, warmup)


async def _closed_loop_of(request, url, token, next_argument, concurrency, seconds, warmup) -> Result:
    """`concurrency` clients, each sending `request(connection, next_argument(), result)` as soon as its last
    one answered, for `seconds` after `warmup` seconds whose answers are not counted."""
    result, scratch = Result(), Result()
    connections = [Connection(url, token) for _ in range(concurrency)]
    measuring_from = time.perf_counter() + warmup
    stop_at = measuring_from + seconds

    async def client(connection: Connection) -> None:
        while (now := time.perf_counter()) < stop_at:
            await request(connection, next_argument(), result if now >= measuring_from else scratch)

    await asyncio.gather(*(client(c) for c in connections))
    result.wall_seconds = seconds
    for connection in connections:
        await connection.close()
    return result


async def _open_loop(url, token, next_body, rate, seconds, pool_size) -> Result:
    result = Result()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(pool_size):
        idle.put_nowait(Connection(url, token))
    started = time.perf_counter()
    total = int(rate * seconds)

    async def one(body: dict) -> None:
        connection = await idle.get()
        try:
            await _book(connection, body, result)
        finally:
            idle.put_nowait(connection)

    tasks = []
    for i in range(total):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(next_body())))
    await asyncio.gather(*tasks)
    result.wall_seconds = time.perf_counter() - started
    while not idle.empty():
        await idle.get_nowait().close()
    return result


def closed_loop(
    *, url: str, token: str, next_body: Callable[[], dict], concurrency: int, seconds: float, warmup: float = 1.0
) -> Result:
    return asyncio.run(_closed_loop(url, token, next_body, concurrency, seconds, warmup))


def closed_loop_reads(
    *, url: str, token: str, next_path: Callable[[], str], concurrency: int, seconds: float, warmup: float = 1.0
) -> Result:
    """The closed loop of GETs: `concurrency` clients, each reads `next_path()` when its previous read answered."""
    return asyncio.run(_closed_loop_reads(url, token, next_path, concurrency, seconds, warmup))


def open_loop(
    *, url: str, token: str, next_body: Callable[[], dict], rate: float, seconds: float, pool_size: int = 32
) -> Result:
    return asyncio.run(_open_loop(url, token, next_body, rate, seconds, pool_size))
