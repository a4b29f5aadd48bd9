"""Who may be put on work: tasks are assigned, and workflows owned and managed, by active HIL
people only (a workflow's manager is a HIL manager). Checked where a caller names a person."""
from __future__ import annotations

import uuid

import psycopg

from app.errors import ApiError


def check_hil_person(conn: psycopg.Connection, person_id: uuid.UUID | None, field: str, manager: bool = False) -> None:
    """422 naming `field` unless `person_id` is None or an active HIL person (a manager if asked)."""
    if person_id is None:
        return
    found = conn.execute("select role from public.user_profiles where id = %s and user_type = 'hil_user' and is_active",
                         (person_id,)).fetchone()
    if found is None:
        message = "not an active HIL person"
    elif manager and found["role"] != "hil_manager":
        message = "not a HIL manager"
    else:
        return
    raise ApiError(422, "the request is not valid", "validation_error", {"json": {field: [message]}})
