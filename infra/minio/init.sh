#!/bin/sh
# minio-init (compose): the buckets, and one MinIO user per client whose policy reaches its bucket
# only (bucket-rw.json with @BUCKET@ filled in). Idempotent: buckets and policies are created or
# kept, users are (re)created with the .env secrets. Any failure stops the job non-zero, and
# everything that depends on it (mlflow, the workers) does not start.
set -eu
: "${MINIO_WORKER_PASSWORD:?}" "${MINIO_MLFLOW_PASSWORD:?}"

mc alias set lira http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "lira/$DVC_BUCKET" "lira/$MLFLOW_BUCKET"

grant() {  # grant USER SECRET BUCKET: USER may read/write BUCKET and nothing else
  policy="lira-rw-$3"
  sed "s/@BUCKET@/$3/g" /policies/bucket-rw.json > "/tmp/$policy.json"
  mc admin policy create lira "$policy" "/tmp/$policy.json"
  mc admin user add lira "$1" "$2"
  # attach refuses a policy that is already attached: only attach when it is not.
  if ! mc admin user info lira "$1" --json | grep -q "\"$policy\""; then
    mc admin policy attach lira "$policy" --user "$1"
  fi
  echo "MinIO user $1: $policy"
}

grant "$MINIO_WORKER_USER" "$MINIO_WORKER_PASSWORD" "$DVC_BUCKET"
grant "$MINIO_MLFLOW_USER" "$MINIO_MLFLOW_PASSWORD" "$MLFLOW_BUCKET"
