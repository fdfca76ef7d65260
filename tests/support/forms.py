"""A DAG's trigger form as the Airflow UI treats it.

The UI (airflow/ui, FlexibleForm) marks a field required when its schema has a ``type`` that
does not admit ``null``, and refuses to trigger while a required field's value is null; an
emptied text field's value becomes null. Airflow then validates each value against its
field's JSON Schema (with formats) when the run is triggered.
"""

from __future__ import annotations


def required(schema: dict) -> bool:
    kind = schema.get("type")
    return bool(kind) and (not isinstance(kind, list) or "null" not in kind)


def ui_conf(dag) -> tuple[dict, list[str]]:
    """The conf the UI sends for the form's defaults, and the fields that would keep Trigger
    disabled (required, but empty)."""
    from airflow.sdk import Param

    conf, blocking = {}, []
    for name in dag.params:
        param = dag.params.get_param(name)
        value = param.value
        if value == "" and "string" in str(param.schema.get("type")):
            value = None  # what the UI's text input makes of an empty field
        if required(param.schema) and value is None:
            blocking.append(name)
        Param(value, **param.schema).resolve()  # Airflow's own validation when the run is triggered
        conf[name] = value
    return conf, blocking
