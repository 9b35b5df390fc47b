# The MLflow tracking server: the official image plus the Postgres driver and the S3 client it
# needs for `--backend-store-uri postgresql://...` and `--artifacts-destination s3://...`.
ARG MLFLOW_VERSION=3.17.2
FROM ghcr.io/mlflow/mlflow:v${MLFLOW_VERSION}

RUN pip install --no-cache-dir --disable-pip-version-check "psycopg2-binary>=2.9,<3" "boto3>=1.34,<2"

ENV MLFLOW_DISABLE_TELEMETRY=true
