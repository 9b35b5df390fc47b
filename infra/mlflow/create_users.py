"""mlflow-init: create (or reset the password of) the workers' MLflow account, as the admin.

Run by compose once MLflow is healthy. Reads MLFLOW_TRACKING_URI and the admin's
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, creates MLFLOW_WORKER_USER with
MLFLOW_WORKER_PASSWORD; when the user exists, its password is set to MLFLOW_WORKER_PASSWORD so the
.env stays the source of truth. The account is not an admin.
"""

from __future__ import annotations

import os
import sys

from mlflow.exceptions import RestException
from mlflow.server import get_app_client


def main() -> int:
    user = os.environ["MLFLOW_WORKER_USER"]
    password = os.environ["MLFLOW_WORKER_PASSWORD"]
    if not password:
        print("MLFLOW_WORKER_PASSWORD is empty", file=sys.stderr)
        return 2
    client = get_app_client("basic-auth", tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    try:
        client.create_user(username=user, password=password)
        print(f"created MLflow user {user}")
    except RestException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        client.update_user_password(username=user, password=password)
        print(f"MLflow user {user} exists; password reset from the environment")
    client.update_user_admin(username=user, is_admin=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
