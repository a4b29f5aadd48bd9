"""What each /ws channel carries, defined once for live routing and for replay from the table.

    workflow:<id>   the workflow's status and progress events and its tasks' events
    task:<id>       the task's events
    workflows       status and progress events of every workflow the caller may see
    notifications   the caller's own notifications
"""
from __future__ import annotations

import dataclasses
import uuid

from psycopg import sql

KINDS = ("workflow", "task", "workflows", "notifications")


class ChannelError(ValueError):
    """A channel name the protocol does not know; `code` is the error code sent back."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True)
class Channel:
    kind: str
    target: uuid.UUID | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" if self.target else self.kind

    @classmethod
    def parse(cls, name) -> "Channel":
        if not isinstance(name, str) or not name:
            raise ChannelError("invalid_channel", "channel must be a non-empty string")
        kind, sep, target = name.partition(":")
        if kind in ("workflows", "notifications") and not sep:
            return cls(kind)
        if kind in ("workflow", "task") and sep:
            try:
                return cls(kind, uuid.UUID(target))
            except ValueError:
                raise ChannelError("invalid_channel", f"{kind}:<id> needs a uuid, got {target[:60]!r}") from None
        raise ChannelError("unknown_channel",
                           f"unknown channel {name[:60]!r}: use workflow:<id>, task:<id>, workflows or notifications")

    def replay_filter(self) -> sql.Composable:
        """The rows of public.realtime_events this channel carries (RLS narrows them further)."""
        if self.kind == "workflow":
            return sql.SQL("workflow_id = {} and event_type <> 'hil_notification'").format(sql.Literal(self.target))
        if self.kind == "task":
            return sql.SQL("task_id = {} and event_type = 'task_execution_updated'").format(sql.Literal(self.target))
        if self.kind == "workflows":
            return sql.SQL("event_type = 'workflow_status_changed'")
        return sql.SQL("event_type = 'hil_notification' and recipient_id = (select auth.uid())")


def channels_of(event_type: str, workflow_id, task_id) -> tuple[str, ...]:
    """The channel names an event is routed to (the live side of replay_filter)."""
    if event_type == "workflow_status_changed":
        return ("workflows", f"workflow:{workflow_id}")
    if event_type == "task_execution_updated":
        return (f"workflow:{workflow_id}", f"task:{task_id}")
    return ("notifications",)
