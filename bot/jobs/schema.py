"""Procrastinate's tables live in our database, created and removed by our Alembic migrations (0011), so one
`moderator db upgrade` (or the bot's start) prepares everything. Alembic's autogenerate must not take them for
tables our models forgot: `include_object` hides them."""

from __future__ import annotations

from typing import Any

PROCRASTINATE_PREFIX = "procrastinate_"


def is_procrastinate_object(name: str | None) -> bool:
    return bool(name) and (name.startswith((PROCRASTINATE_PREFIX, f"idx_{PROCRASTINATE_PREFIX}")))


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's filter: compare only our own tables and indexes, never procrastinate's."""
    return not (reflected and compare_to is None and is_procrastinate_object(name))


# Drops whatever procrastinate created (tables first: their triggers go with them; then functions, then types).
DROP_SCHEMA = r"""
DO $$
DECLARE item record;
BEGIN
    FOR item IN SELECT tablename FROM pg_tables
                WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate\_%' LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', item.tablename);
    END LOOP;
    FOR item IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
                JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\_%' LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', item.signature);
    END LOOP;
    FOR item IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate\_%' AND t.typtype IN ('e', 'c')
                AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid AND c.relkind <> 'c') LOOP
        EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', item.typname);
    END LOOP;
END
$$;
"""
