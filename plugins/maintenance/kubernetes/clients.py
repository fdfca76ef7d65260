"""The Kubernetes API clients of the policy's connection, through the provider's KubernetesHook:
the one way this project talks to a cluster."""

from __future__ import annotations


def clients(conn_id: str) -> dict:
    """The typed API clients the engines use, on one API connection."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes import client

    api = KubernetesHook(conn_id=conn_id).get_conn()
    return {"core": client.CoreV1Api(api), "apps": client.AppsV1Api(api), "batch": client.BatchV1Api(api),
            "policy": client.PolicyV1Api(api), "custom": client.CustomObjectsApi(api),
            "networking": client.NetworkingV1Api(api), "coordination": client.CoordinationV1Api(api)}
