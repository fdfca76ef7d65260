# The image every Airflow service of docker-compose.yaml runs: the official Airflow 3.3 image
# with the project's lock installed (the same pins as `make demo` and `make test`) and the
# project's DAGs, plugins, policy and set-up tools in it, so the stack runs as shipped. The
# compose file also mounts dags/, plugins/ and include/ over these copies for local editing.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.lock /opt/airflow/requirements.lock
# The lock pins apache-airflow itself at the image's version, so pip keeps the image's Airflow.
RUN pip install --no-cache-dir -r /opt/airflow/requirements.lock

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 include /opt/airflow/include
COPY --chown=airflow:0 devtools /opt/airflow/devtools

ENV MAINTENANCE_POLICY_FILE=/opt/airflow/include/maintenance_policy.yaml \
    PYTHONPATH=/opt/airflow/plugins:/opt/airflow
