"""AWS clients for the policy's connection (``connections.aws``), through the amazon provider."""

from __future__ import annotations


def client(policy, kind: str):
    """A boto3 client of ``kind`` (s3, ec2, rds, ce, ...) with the connection's credentials,
    region and endpoint."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(aws_conn_id=policy.connections.aws, client_type=kind).get_conn()
