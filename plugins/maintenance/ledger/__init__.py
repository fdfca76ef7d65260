"""The maintenance ledger: every run, action, finding, metric and incident, in PostgreSQL."""


def relation_target(conn_id: str, relation: str) -> str:
    """The ledger's name for a database relation (``schema.table``, or a database name): its
    actions and metrics are recorded and looked up under it. The connection is part of it, as
    two databases may hold relations of the same name."""
    return f"{conn_id}:{relation}"
