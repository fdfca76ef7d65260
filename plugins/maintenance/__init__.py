"""Pathfinity platform maintenance: policy, gate, engines and Airflow operators.

Airflow puts ``plugins/`` on ``sys.path`` for the scheduler, the DAG processor
and the workers, so this package imports as ``maintenance`` everywhere. Modules
here import nothing heavy at import time: DAG files import them while parsing.
"""
