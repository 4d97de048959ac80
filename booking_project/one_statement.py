"""Several INSERTs sent as one statement: data-modifying CTEs (`WITH a AS (INSERT ...), b AS (INSERT ...) SELECT ...`).

The rows are unsaved model instances; their columns and values come from Django's own field machinery (the
defaults, `auto_now`, `pre_save`, `get_db_prep_save`), exactly as `bulk_create` would write them, so a column
added to a model is written here too. What this saves is the round trip and Django's per-statement work, not
any rule: constraints (the slots' exclusion constraint above all) are checked by PostgreSQL as always.
"""

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Model
from psycopg import _queries as psycopg_queries

# psycopg keeps the conversion of a query's placeholders (`%s` -> `$1`) in an LRU of 128 queries, but only for
# queries under 4 KiB with at most 50 parameters: a guard against ORMs' multi-row INSERTs of ever-varying sizes.
# The booking's one statement has one shape per class size, of 6-10 KiB and 100+ parameters, sent for every
# booking: re-parsing it each time cost about a millisecond of the web's CPU per booking. Raised, the LRU still
# holds at most 128 queries (a few MiB at worst).
psycopg_queries.MAX_CACHED_STATEMENT_LENGTH = max(psycopg_queries.MAX_CACHED_STATEMENT_LENGTH, 64 * 1024)
psycopg_queries.MAX_CACHED_STATEMENT_PARAMS = max(psycopg_queries.MAX_CACHED_STATEMENT_PARAMS, 2000)


@dataclass
class Part:
    """One named part of the WITH list, and its parameters in the order they appear."""

    name: str
    sql: str
    params: list[Any] = field(default_factory=list)


def rows_insert(
    name: str,
    rows: Sequence[Model],
    *,
    where: str | None = None,
    join: tuple[str, str, dict[str, str]] | None = None,
    extra: dict[str, list[Any]] | None = None,
) -> Part:
    """`name AS (INSERT INTO <rows' table> (...) ...)`, every concrete column of the model as `bulk_create` writes it.

    `where` guards the write (an SQL condition on earlier parts: when false, nothing is inserted). `join`
    = (part, condition, {column: expression}) takes some columns from an earlier part instead of the rows
    (`v.<extra column>` names the rows' side); `extra` adds per-row values (column name -> one value a row)
    for that condition only.
    """
    model = type(rows[0])
    fields, table, column_list, casts = _shape(model, rows[0].pk is None)
    extra = extra or {}
    params: list[Any] = []
    for index, row in enumerate(rows):
        params.extend([f.get_db_prep_save(f.pre_save(row, True), connection) for f in fields])
        params.extend(column_values[index] for column_values in extra.values())
    one_row = f"({', '.join([casts, *('%s::uuid' for _ in extra)])})"
    aliases = ", ".join([*(f"c{i}" for i in range(len(fields))), *extra])
    taken = dict(join[2]) if join else {}
    selected = ", ".join(taken.get(f.column, f"v.c{i}") for i, f in enumerate(fields))
    source = f"(VALUES {', '.join([one_row] * len(rows))}) AS v({aliases})"
    if join:
        source += f" JOIN {join[0]} ON {join[1]}"
    sql = (
        f"{name} AS (INSERT INTO {table} ({column_list}) "
        f"SELECT {selected} FROM {source}{f' WHERE {where}' if where else ''} RETURNING 1)"
    )
    return Part(name=name, sql=sql, params=params)


@functools.cache
def _shape(model: type[Model], pk_generated: bool) -> tuple[list[Any], str, str, str]:
    """The model's written fields (an auto-increment key left to the database), its table, its column list, and
    one row's typed placeholders: in a SELECT the values' types cannot be taken from the target columns. A
    length is left out (varchar(16) -> varchar) so that a value too long is refused, not cut."""
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not (f is meta.auto_field and pk_generated)]
    return (
        fields,
        quoted(meta.db_table),
        ", ".join(quoted(f.column) for f in fields),
        ", ".join(f"%s::{_cast_type(f)}" for f in fields),
    )


def parts_run(parts: Sequence[Part], *, select: str, select_params: Sequence[Any] = ()) -> list[tuple]:
    """Send the parts as one statement ending in `select`; returns its rows. Every part is carried out, read
    or not (PostgreSQL runs data-modifying CTEs to completion)."""
    sql = f"WITH {', '.join(p.sql for p in parts)} {select}"
    params = [param for p in parts for param in p.params] + list(select_params)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def rows_saved(rows: Sequence[Model]) -> None:
    """Mark instances written by `rows_insert` as saved, as `bulk_create` would."""
    for row in rows:
        row._state.adding = False
        row._state.db = connection.alias


def _cast_type(f: Any) -> str:
    db_type = f.cast_db_type(connection)
    head, _, tail = db_type.partition("(")
    # "varchar(16)" -> "varchar", but "uuid[]" and "timestamp with time zone" stay as they are
    return head if tail.endswith(")") and "[" not in tail else db_type


def quoted(name: str) -> str:
    """A table or column name as PostgreSQL reads it, for SQL written out around these statements."""
    return connection.ops.quote_name(name)
