"""Server-owned metadata keys: the database refuses them from callers (the one list is
private.server_owned_metadata_keys(), guarded by private.guard_server_owned_metadata); here
that refusal becomes the API's 422 validation_error naming each key, as a schema's would."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from psycopg import errors as pg

from app.errors import ApiError

CONSTRAINT = "server_owned_metadata"


@contextlib.contextmanager
def server_owned_keys_refused() -> Iterator[None]:
    """Statements in this block that write metadata: a server-owned key a caller sent is a 422
    with details {"json": {"metadata": {"<key>": ["..."]}}}."""
    try:
        yield
    except pg.InvalidParameterValue as error:
        if error.diag.constraint_name != CONSTRAINT:
            raise
        keys = [key for key in (error.diag.message_detail or "").split(",") if key] or ["_schema"]
        raise ApiError(422, "the request is not valid", "validation_error", {"json": {"metadata": {
            key: [f"{key} is written by the server only"] for key in keys}}}) from None
