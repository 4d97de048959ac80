"""The floor: the booking transaction's own SQL, replayed by pgbench at a given concurrency, on a copy of the
bench database (same server, same schema, same people). No Python, no HTTP: what PostgreSQL alone can do on
this machine, the limit every API figure is compared with.

The SQL is not written by hand: one real booking (`session_book`) is made and its statements, BEGIN to
COMMIT, are captured; the ids of its people become pgbench variables picked per transaction (pair n % P, as
the API phases do), the ids it generated become fresh ones, and its start time the n-th quarter-hour.
One extra statement per transaction, before BEGIN, picks those values (`\\gset`). The statements reach
PostgreSQL the way the application sends them: literal SQL (`-M simple`) or, with server-side binding and
prepared statements (`DB_SERVER_SIDE_BINDING`), parameters of prepared statements (`-M prepared`).
"""

import re
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psycopg

HEX = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
DASHED = re.compile(r"(?<![0-9a-f-])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![0-9a-f])")


@dataclass(frozen=True)
class FloorScript:
    text: str
    statements: int


def _dashed(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


def floor_script(
    *,
    statements: list[str],
    known: dict[str, str],
    start: datetime,
    minutes: int,
    pairs: int,
    first: datetime,
    prepared: bool = False,
) -> FloorScript:
    """`statements`: the captured SQL from BEGIN to COMMIT; `known`: variable name -> id (hex) of the people
    and entitlement the captured booking used; `start`: its start time."""
    hex_to_var = {value: name for name, value in known.items()}
    fresh: dict[str, str] = {}

    def var_for(hex32: str) -> str:
        if hex32 not in hex_to_var:
            fresh[hex32] = hex_to_var[hex32] = f"fresh{len(fresh) + 1}"
        return ":" + hex_to_var[hex32]

    end = start + timedelta(minutes=minutes)
    times = {
        start.strftime("%Y-%m-%d %H:%M:%S+00:00"): ":start_sql",
        start.isoformat(): ":start_iso",
        end.strftime("%Y-%m-%d %H:%M:%S+00:00"): ":end_sql",
        end.isoformat(): ":end_iso",
    }
    body = []
    for sql in statements:
        sql, json_literals = _parameter_friendly(sql)
        sql = DASHED.sub(lambda m: var_for(m.group(0).replace("-", "")), sql)
        sql = HEX.sub(lambda m: var_for(m.group(0)), sql)
        for literal, var in times.items():
            sql = sql.replace(literal, var)
        if prepared:
            # A variable standing alone in a literal becomes a parameter (pgbench -M prepared sends $n for it).
            sql = re.sub(r"':(\w+)'::", r":\1::", sql)
        for i, literal in enumerate(json_literals):
            sql = sql.replace(f"'@json{i}@'", literal)
        body.append(" ".join(sql.split()) + ";")
    literals = (m.group(0) for sql in body for m in re.finditer(r"'(?:[^']|'')*'", sql))
    inside_literals = [literal for literal in literals if re.search(r":[a-z_]+", literal)]
    if prepared and inside_literals:
        raise ValueError(f"variables left inside literals: {inside_literals[:3]}")
    fmt_sql = "'YYYY-MM-DD HH24:MI:SS\"+00:00\"'"
    fmt_iso = '\'YYYY-MM-DD"T"HH24:MI:SS"+00:00"\''
    end_at = f"(t.at + interval '{minutes} minutes')"
    picks = [
        *(f"p.{name}" for name in known),
        # Prepared: the timestamptz itself, a parameter; simple: text with no colon for pgbench to misread.
        "t.at AS start_sql" if prepared else f"to_char(t.at AT TIME ZONE 'UTC', {fmt_sql}) AS start_sql",
        f"{end_at} AS end_sql" if prepared else f"to_char({end_at} AT TIME ZONE 'UTC', {fmt_sql}) AS end_sql",
        f"to_char(t.at AT TIME ZONE 'UTC', {fmt_iso}) AS start_iso",
        f"to_char({end_at} AT TIME ZONE 'UTC', {fmt_iso}) AS end_iso",
        *(f"md5(s.n || '-{name}')::uuid AS {name}" for name in fresh.values()),
    ]
    used = set(re.findall(r":(\w+)", "\n".join(body)))
    picks = [pick for pick in picks if pick.rsplit(" ", 1)[-1].removeprefix("p.") in used]
    pick = (
        f"SELECT {', '.join(picks)} FROM (SELECT nextval('bench_floor_seq') AS n) s "
        f"JOIN bench_floor_people p ON p.k = s.n % {pairs} "
        f"CROSS JOIN LATERAL (SELECT timestamptz '{first.isoformat()}' "
        f"+ (s.n / {pairs}) * interval '{minutes} minutes' AS at) t \\gset"
    )
    return FloorScript(text="\n".join([pick, *body]) + "\n", statements=len(statements))


def _parameter_friendly(sql: str) -> tuple[str, list[str]]:
    """Rewrite the literals pgbench cannot turn into parameters: a JSON document is set aside whole (its
    content costs the same whatever ids it names), a range and an array of ids become constructors whose
    elements are single literals."""
    json_literals: list[str] = []

    def set_aside(match: re.Match) -> str:
        json_literals.append(match.group(0))
        return f"'@json{len(json_literals) - 1}@'"

    sql = re.sub(r"'\{[^']*\}'::jsonb", set_aside, sql)
    sql = re.sub(
        r"'\[\"([^\"]+)\",\"([^\"]+)\"\)'::tstzrange(::tstzrange)?",
        r"tstzrange('\1'::timestamptz, '\2'::timestamptz, '[)')",
        sql,
    )
    sql = re.sub(
        r"'\{([0-9a-f,-]+)\}'::uuid\[\](::uuid\[\])?",
        lambda m: "ARRAY[" + ", ".join(f"'{v}'::uuid" for v in m.group(1).split(",")) + "]::uuid[]",
        sql,
    )
    return sql, json_literals


def floor_prepare(*, dsn: str, rows: list[dict[str, str]]) -> None:
    """The pgbench helper table (people of pair k) and sequence, in the floor's database."""
    columns = list(rows[0])
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(f"CREATE TABLE bench_floor_people (k int PRIMARY KEY, {', '.join(f'{c} uuid' for c in columns)})")
        with db.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO bench_floor_people VALUES (%s, {', '.join(['%s'] * len(columns))})",
                [(k, *(row[c] for c in columns)) for k, row in enumerate(rows)],
            )
        db.execute("CREATE SEQUENCE bench_floor_seq")
        db.execute("ANALYZE")


@dataclass(frozen=True)
class FloorResult:
    concurrency: int
    tps: float
    transactions: int
    failed: int
    p50_ms: float
    p99_ms: float


def floor_run(
    *, script: FloorScript, db: str, host: str, port: int, user: str, concurrency: int, seconds: float, mode: str
):
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        path = Path(tmp) / "booking.sql"
        path.write_text(script.text)
        command = [
            "pgbench", "-n", "-M", mode, "-h", host, "-p", str(port), "-U", user,
            "-c", str(concurrency), "-j", str(min(concurrency, 2)), "-T", str(max(1, round(seconds))),
            "-f", str(path), "--log", "--log-prefix", str(Path(tmp) / "tx"), db,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp)
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed: {done.stderr[-2000:]}")
        latencies = []
        for log in Path(tmp).glob("tx*"):
            for line in log.read_text().splitlines():
                fields = line.split()
                latencies.append(int(fields[2]) / 1000)
    tps = float(re.search(r"tps = ([\d.]+)", done.stdout).group(1))
    transactions = int(re.search(r"number of transactions actually processed: (\d+)", done.stdout).group(1))
    failed_match = re.search(r"number of failed transactions: (\d+)", done.stdout)
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(round(p / 100 * (len(latencies) - 1))))] if latencies else 0.0

    return FloorResult(
        concurrency, tps, transactions, int(failed_match.group(1)) if failed_match else 0, pct(50), pct(99)
    )
