"""Row changes to SQL, in batches: the statement of each row shape (table, operation, columns and
kinds of value) is rendered once and cached, and the rows of one shape go to the server as one
statement over arrays (`INSERT ... SELECT FROM unnest(%s::uuid[], ...)`, `UPDATE ... FROM unnest`),
all pipelined: a page costs a few statements per shape, not one per row.

Rows may be reordered only where it cannot matter: the rows of one key stay in fold order (the
first row of every key, then the second, ...), and a row with a `Lookup` stays after the writes to
the looked-up table that came before it in the page and before those that came after (so a
timeline entry carries the actor's name as of its event)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from psycopg import Cursor
from psycopg.adapt import PyFormat
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Placeholder
from psycopg.types.json import Jsonb

from projections.folds import Append, Increment, Inherit, Lookup, Merge, Row

Shape = tuple[Hashable, ...]
BINARY = PyFormat.BINARY
_statements: dict[Shape, str] = {}


_KINDS: dict[type, str] = {Increment: "increment", Append: "append", Merge: "merge"}
_kind_of = {**_KINDS, Lookup: "lookup"}.get
_JSON = (dict, list)


def shape(row: Row, suffix: str = "") -> Shape:
    """What the statement of a row depends on (not its values): its table, operation, key
    columns, value columns and the kind of each value (None for a plain one)."""
    values = row.values.values()
    kinds: tuple[Hashable, ...] = tuple(map(_kind_of, map(type, values)))  # no Python loop
    if "lookup" in kinds:
        kinds = tuple(
            (v.table, v.expression) if type(v) is Lookup else kind
            for kind, v in zip(kinds, values, strict=True)
        )
    return (row.table + suffix, row.op, tuple(row.key), tuple(row.values), kinds)


def _adapt(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, _JSON) else value


def params(row: Row) -> list[Any]:
    """The row's parameters, in the order of its shape's placeholders."""
    if row.op == "delete":
        return list(row.key.values())
    if row.op == "inherit":
        (inherit,) = row.values.values()
        assert isinstance(inherit, Inherit)
        return [*row.key.values(), inherit.source]
    if row.op in ("insert", "upsert"):
        values = (*row.key.values(), *row.values.values())
        return [v.key if isinstance(v, Lookup) else _adapt(v) for v in values]
    out: list[Any] = []
    for value in row.values.values():
        if isinstance(value, Increment):
            out.append(value.by)
        elif isinstance(value, Append):
            out.append(value.item)
        elif isinstance(value, Merge):
            out.append(Jsonb(value.item))
        else:
            out.append(_adapt(value))
    return out + list(row.key.values())


def statement(row: Row, suffix: str = "") -> str:
    """The SQL of the row's shape for one row, rendered the first time it is needed."""
    key = shape(row, suffix)
    found = _statements.get(key)
    if found is None:
        found = _statements[key] = render(row, suffix).as_string(None)
    return found


def _on_conflict(row: Row) -> Composed:
    if not row.values:
        return Composed([SQL(" ON CONFLICT DO NOTHING")])
    return SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(
        SQL(", ").join(Identifier(c) for c in row.key),
        SQL(", ").join(
            SQL("{} = EXCLUDED.{}").format(Identifier(c), Identifier(c)) for c in row.values
        ),
    )


def _value_sql(value: Any, suffix: str) -> Composed:
    if isinstance(value, Lookup):
        return SQL("(SELECT {} FROM {} WHERE id = {})").format(
            SQL(value.expression), Identifier(value.table + suffix), Placeholder()
        )
    return Composed([Placeholder()])


def render(row: Row, suffix: str = "") -> Composed:
    """SQL for one row change (into the shadow tables of a rebuild when `suffix` is given)."""
    table = Identifier(row.table + suffix)
    where = SQL(" AND ").join(SQL("{} = {}").format(Identifier(k), Placeholder()) for k in row.key)
    if row.op == "delete":
        return SQL("DELETE FROM {} WHERE {}").format(table, where)
    if row.op == "inherit":
        ((column, inherit),) = row.values.items()
        assert isinstance(inherit, Inherit)
        return SQL(
            "INSERT INTO {} ({}, {}) SELECT {}, {} FROM {} WHERE {} = {} ON CONFLICT DO NOTHING"
        ).format(
            table,
            SQL(", ").join(Identifier(k) for k in row.key),
            Identifier(column),
            SQL(", ").join(Placeholder() for _ in row.key),
            Identifier(column),
            table,
            Identifier(inherit.column),
            Placeholder(),
        )
    if row.op in ("insert", "upsert"):
        cols = {**row.key, **row.values}
        statement = SQL("INSERT INTO {} ({}) VALUES ({})").format(
            table,
            SQL(", ").join(Identifier(c) for c in cols),
            SQL(", ").join(_value_sql(v, suffix) for v in cols.values()),
        )
        if row.op == "upsert":
            statement += _on_conflict(row)
        return statement
    sets: list[Composed] = []
    for column, value in row.values.items():
        col = Identifier(column)
        if isinstance(value, Increment):
            sets.append(SQL("{} = {} + {}").format(col, col, Placeholder()))
        elif isinstance(value, Append):
            sets.append(SQL("{} = array_append({}, {})").format(col, col, Placeholder()))
        elif isinstance(value, Merge):
            sets.append(SQL("{} = {}").format(col, _merged(col, Placeholder())))
        else:
            sets.append(SQL("{} = {}").format(col, Placeholder()))
    return SQL("UPDATE {} SET {} WHERE {}").format(table, SQL(", ").join(sets), where)


def _merged(column: Identifier | Composed, value: Any) -> Composed:
    """The jsonb `column` with the keys of `value` it already has set to their new values."""
    return SQL(
        "{} || (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{{}}') "
        "FROM jsonb_each({}) AS e WHERE {} ? e.key)"
    ).format(column, value, column)


def write_rows(curs: Cursor[DictRow], rows: Sequence[Row], suffix: str = "") -> None:
    """Write the rows of a page: a statement per row shape (and per level, see _groups)."""
    with curs.connection.pipeline():
        for segment in _segments(rows):
            for group in _groups(_coalesced(segment), suffix):
                _send(curs, group, suffix)


def _coalesced(segment: list[Row]) -> list[Row]:
    """The segment with each update folded into the write before it to the same key, where the
    result is the same: an update of plain values (or an increment of a value the earlier write
    sets) after an insert, upsert or update. A page of events about one record then writes its
    row once. (Within a segment no table is both written and looked up, so no row in between
    could have seen the intermediate state.)"""
    out: list[Row] = []
    last: dict[tuple[Any, ...], int] = {}
    for row in segment:
        key = (row.table, *sorted(row.key.items()))
        i = last.get(key)
        if i is not None and row.op == "update":
            folded = _fold_update(out[i], row)
            if folded is not None:
                out[i] = folded
                continue
        last[key] = len(out)
        out.append(row)
    return out


def _fold_update(earlier: Row, update: Row) -> Row | None:
    if earlier.op not in ("insert", "upsert", "update"):
        return None
    values = dict(earlier.values)
    for column, value in update.values.items():
        kind = type(value)
        if kind is Increment:
            before = values.get(column)
            if before is None or type(before) in _KINDS or type(before) is Lookup:
                return None
            values[column] = before + value.by
        elif kind in _KINDS or kind is Lookup:
            return None
        else:
            values[column] = value
    return Row(earlier.table, earlier.key, values, earlier.op)


def _segments(rows: Sequence[Row]) -> list[list[Row]]:
    """Cut the page where a row writes a table that an earlier row of the segment looks up, or
    looks up a table that an earlier row of the segment writes: within a segment, no table is
    both written and looked up, so its rows may be grouped by table."""
    segments: list[list[Row]] = [[]]
    written: set[str] = set()
    looked_up: set[str] = set()
    for row in rows:
        reads = (
            {v.table for v in row.values.values() if type(v) is Lookup}
            if Lookup in map(type, row.values.values())
            else set()
        )
        if row.op == "inherit":
            reads.add(row.table)
        if row.table in looked_up or reads & written:
            segments.append([])
            written, looked_up = set(), set()
        segments[-1].append(row)
        written.add(row.table)
        looked_up |= reads
    return [segment for segment in segments if segment]


def _groups(segment: list[Row], suffix: str) -> list[list[Row]]:
    """Rows of one shape, level by level: level n holds the n-th row of each key, so rows of a
    level touch different keys and the rows of each key keep their order."""
    depth: dict[tuple[Any, ...], int] = {}
    groups: dict[tuple[int, Shape], list[Row]] = {}
    for row in segment:
        key = (row.table, *row.key.values())
        level = depth.get(key, 0)
        depth[key] = level + 1
        groups.setdefault((level, shape(row, suffix)), []).append(row)
    return [group for (_level, _shape), group in sorted(groups.items(), key=lambda g: g[0][0])]


def _send(curs: Cursor[DictRow], group: list[Row], suffix: str) -> None:
    first = group[0]
    batched = _batched_statement(curs, first, suffix) if len(group) > 1 else None
    if batched is None:
        sql = statement(first, suffix)
        for row in group:
            curs.execute(sql, params(row), prepare=True)
        return
    curs.execute(batched, _columns(group), prepare=True)


def _columns(group: list[Row]) -> list[list[Any]]:
    """The parameters of a group of rows of one shape, as one array per placeholder of its
    batched statement (the order of `params`), built column by column."""
    first = group[0]
    keys = [row.key for row in group]
    values = [row.values for row in group]
    key_columns = [[key[name] for key in keys] for name in first.key]
    if first.op == "delete":
        return [_array(column) for column in key_columns]
    value_columns = []
    for name, sample in first.values.items():
        column = [value[name] for value in values]
        kind = type(sample)  # one kind per column in a shape
        if kind is Lookup:
            column = [v.key for v in column]
        elif kind is Increment:
            column = [v.by for v in column]
        elif kind is Append:  # an array's element, as `params` passes it: never JSON
            value_columns.append(_array([v.item for v in column], json=False))
            continue
        elif kind is Merge:
            column = [Jsonb(v.item) for v in column]
        value_columns.append(_array(column))
    key_arrays = [_array(column) for column in key_columns]
    if first.op == "update":
        return value_columns + key_arrays
    return key_arrays + value_columns


def _array(values: list[Any], json: bool = True) -> list[Any]:
    """One column's values as a list psycopg dumps as one array: all of one type (or None),
    JSON values (dicts, lists) as Jsonb where `json`, as `params` adapts them."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if json and any(issubclass(kind, _JSON) for kind in kinds):
        values = [Jsonb(v) if isinstance(v, _JSON) else v for v in values]
        kinds = {Jsonb if issubclass(kind, _JSON) else kind for kind in kinds}
    if len(kinds) <= 1:
        return values
    if Jsonb in kinds:
        return [v if v is None or isinstance(v, Jsonb) else Jsonb(v) for v in values]
    return [None if v is None else str(v) for v in values]  # PostgreSQL casts the text


# --- many rows of one shape in one statement --------------------------------------------------

_types: dict[str, dict[str, tuple[str, str | None]]] = {}
"""Per table: each column's type and, for an array column, its element type."""


def _column_types(curs: Cursor[DictRow], table: str) -> dict[str, tuple[str, str | None]]:
    found = _types.get(table)
    if found is None:
        curs.execute(
            """SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
                      CASE WHEN t.typcategory = 'A' THEN format_type(t.typelem, NULL) END
                        AS element
               FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
               WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped""",
            (table,),
        )
        found = _types[table] = {r["name"]: (r["type"], r["element"]) for r in curs.fetchall()}
    return found


def _batched_statement(curs: Cursor[DictRow], row: Row, suffix: str) -> str | None:
    """The statement that writes many rows of this shape from one array per column (None when
    a column holds arrays itself: those rows go one by one)."""
    key = (*shape(row, suffix), "batch")
    if row.op == "inherit":
        return None
    if key in _statements:
        return _statements[key] or None
    table = row.table + suffix
    types = _column_types(curs, table)
    names = [*row.key, *row.values] if row.op != "update" else [*row.values, *row.key]
    casts: list[str] = []
    for name in names:
        value = row.values.get(name)
        if isinstance(value, Lookup):
            casts.append(_column_types(curs, value.table + suffix)["id"][0])
        elif isinstance(value, Append):
            casts.append(types[name][1] or types[name][0])
        elif types[name][1] is not None and name in row.values:
            _statements[key] = ""  # an array column set whole: unnest would flatten it
            return None
        else:
            casts.append(types[name][0])
    alias = [Identifier(f"c{i}") for i in range(len(names))]
    column = dict(zip(names, alias, strict=True))
    source = SQL("unnest({}) AS u({})").format(
        # Binary: arrays in text format cost an escaping regex per element.
        SQL(", ").join(
            SQL("{}::{}[]").format(Placeholder(format=BINARY), SQL(cast)) for cast in casts
        ),
        SQL(", ").join(alias),
    )
    where = SQL(" AND ").join(SQL("t.{} = u.{}").format(Identifier(k), column[k]) for k in row.key)
    target = Identifier(table)
    if row.op == "delete":
        sql = SQL("DELETE FROM {} AS t USING {} WHERE {}").format(target, source, where)
    elif row.op == "update":
        sets = []
        for name, value in row.values.items():
            col = Identifier(name)
            if isinstance(value, Increment):
                sets.append(SQL("{} = t.{} + u.{}").format(col, col, column[name]))
            elif isinstance(value, Append):
                sets.append(SQL("{} = array_append(t.{}, u.{})").format(col, col, column[name]))
            elif isinstance(value, Merge):
                target_col = SQL("t.{}").format(col)
                sets.append(
                    SQL("{} = {}").format(
                        col, _merged(target_col, SQL("u.{}").format(column[name]))
                    )
                )
            else:
                sets.append(SQL("{} = u.{}").format(col, column[name]))
        sql = SQL("UPDATE {} AS t SET {} FROM {} WHERE {}").format(
            target, SQL(", ").join(sets), source, where
        )
    else:
        selected = []
        for name in names:
            value = row.values.get(name)
            if isinstance(value, Lookup):
                selected.append(
                    SQL("(SELECT {} FROM {} WHERE id = u.{})").format(
                        SQL(value.expression), Identifier(value.table + suffix), column[name]
                    )
                )
            else:
                selected.append(SQL("u.{}").format(column[name]))
        sql = SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
            target, SQL(", ").join(Identifier(n) for n in names), SQL(", ").join(selected), source
        )
        if row.op == "upsert":
            sql += _on_conflict(row)
    rendered = _statements[key] = sql.as_string(None)
    return rendered
