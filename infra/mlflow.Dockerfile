# The MLflow tracking server: the official image (an exact version) plus the Postgres driver, the S3
# client and the basic-auth app's dependencies (`mlflow[auth]`) that `--backend-store-uri
# postgresql://...`, `--artifacts-destination s3://...` and `--app-name basic-auth` need. It runs
# as the unprivileged `mlflow` user; the auth database lives on the volume at /var/lib/mlflow-auth.
ARG MLFLOW_VERSION=3.17.2
FROM ghcr.io/mlflow/mlflow:v${MLFLOW_VERSION}
ARG MLFLOW_VERSION

RUN pip install --no-cache-dir --disable-pip-version-check \
        "mlflow[auth]==${MLFLOW_VERSION}" "psycopg2-binary>=2.9,<3" "boto3>=1.34,<2" \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin mlflow \
    && mkdir -p /var/lib/mlflow-auth && chown mlflow:mlflow /var/lib/mlflow-auth

ENV MLFLOW_DISABLE_TELEMETRY=true
USER 10001
