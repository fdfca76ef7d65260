"""Table names as people type them, resolved against the database's own catalog.

The trigger form's ``tables`` field narrows PostgreSQL work. A name that matches nothing
must fail loudly: an empty plan that reports success would be the worst answer to a typo.
PostgreSQL itself parses each name (``parse_ident``), so the rules are the server's: unquoted
parts fold to lower case, quoted parts keep theirs. A bare table name is accepted when
exactly one of the policy's schemas has it. A name prefixed with a connection id
(``platform_db:public.x``) is for that database only; other databases ignore it.
"""

from __future__ import annotations

import difflib

from maintenance.errors import InputError

FIELD = "tables"
_KINDS = ("r", "p", "m")  # tables, partitioned tables, materialized views


def _catalog(conn, schemas: list[str]) -> set[tuple[str, str]]:
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = ANY(%s) AND n.nspname = ANY(%s) AND NOT c.relispartition",
        (list(_KINDS), list(schemas))).fetchall()
    return {(schema, name) for schema, name in rows}


def _parse(conn, name: str) -> list[str]:
    import psycopg

    try:
        return conn.execute("SELECT parse_ident(%s)", (name,)).fetchone()[0]
    except psycopg.errors.InvalidParameterValue as exc:
        raise InputError(f"{FIELD}: {name!r} is not a table name ({exc.diag.message_primary})") from None


def for_database(names, conn_id: str) -> list[str]:
    """The names meant for the database behind ``conn_id``, prefixes removed."""
    mine = []
    for raw in names:
        prefix, sep, rest = raw.partition(":")
        if sep and prefix.strip() and '"' not in prefix:
            if prefix.strip() == conn_id:
                mine.append(rest.strip())
        else:
            mine.append(raw.strip())
    return mine


def resolve(conn, schemas: list[str], names, *, conn_id: str) -> set[str] | None:
    """``schema.table`` of every name meant for this database; None when the field is empty
    (no narrowing). Raises InputError naming every name that is not a table of the policy's
    schemas, or that more than one schema has."""
    wanted = for_database(names, conn_id)
    if not names:
        return None
    catalog = _catalog(conn, schemas)
    by_table: dict[str, list[str]] = {}
    for schema, table in catalog:
        by_table.setdefault(table, []).append(schema)
    found, problems = set(), []
    for name in wanted:
        parts = _parse(conn, name)
        if len(parts) == 2 and tuple(parts) in catalog:
            found.add(f"{parts[0]}.{parts[1]}")
        elif len(parts) == 1 and len(by_table.get(parts[0], [])) == 1:
            found.add(f"{by_table[parts[0]][0]}.{parts[0]}")
        elif len(parts) == 1 and parts[0] in by_table:
            choices = ", ".join(f"{s}.{parts[0]}" for s in sorted(by_table[parts[0]]))
            problems.append(f"{name!r} is in more than one schema: name one of {choices}")
        elif len(parts) == 2 and parts[0] not in schemas:
            problems.append(f"{name!r}: schema {parts[0]!r} is not one the policy maintains on {conn_id} "
                            f"({', '.join(schemas)})")
        elif len(parts) > 2:
            problems.append(f"{name!r}: give schema.table, not a database or more parts")
        else:
            known = sorted(f"{s}.{t}" for s, t in catalog)
            guess = difflib.get_close_matches(".".join(parts), known, n=1) or difflib.get_close_matches(
                parts[-1], sorted(by_table), n=1)
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            problems.append(f"{name!r} is not a table of {conn_id} in schemas {', '.join(schemas)}{hint}")
    if problems:
        raise InputError(f"{FIELD}: " + "; ".join(problems))
    return found

