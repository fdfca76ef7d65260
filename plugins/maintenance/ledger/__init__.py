"""The maintenance ledger: every run, action, finding, metric and incident, in PostgreSQL."""


def relation_target(conn_id: str, relation: str) -> str:
    """The ledger's name for a database relation (``schema.table``, or a database name): its
    actions and metrics are recorded and looked up under it. The connection is part of it, as
    two databases may hold relations of the same name."""
    return f"{conn_id}:{relation}"


def holder_name(key) -> str:
    """How a task names itself to other actors when it holds a target (a table's advisory lock,
    the node Lease, the cache's lock key): its DAG, run and task."""
    return f"maintenance {key.dag_id} {key.run_id} {key.task_id}" + (f"[{key.map_index}]" if key.map_index >= 0
                                                                      else "")
