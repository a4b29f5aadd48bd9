"""Communications: list, record (with channel metadata), read."""
from __future__ import annotations

import uuid

from flask.views import MethodView

from app.api import Blueprint
from app.auth import current_principal
from app.db import get_db
from app.errors import ApiError
from app.schemas.communications import (CommunicationCreate, CommunicationDetail, CommunicationList,
                                        CommunicationListArgs)
from app.services import communications as service

blp = Blueprint("communications", __name__, url_prefix="/api/communications",
                description="Emails, calls, messages and SMS of a workflow")


@blp.route("")
class Communications(MethodView):
    @blp.arguments(CommunicationListArgs(), location="query")
    @blp.response(200, CommunicationList)
    def get(self, args):
        """List the communications you may see, newest first (clients: client-visible ones only)."""
        return get_db().run(current_principal(), lambda conn: service.list_communications(conn, args))

    @blp.arguments(CommunicationCreate())
    @blp.response(201, CommunicationDetail)
    def post(self, data):
        """Record a communication, with its channel metadata (email, call or message) in the same transaction.

        Client users may post only client-visible INBOUND communications on their own workflows;
        doing so notifies the workflow's HIL owner (CLIENT_MESSAGE_RECEIVED)."""
        principal = current_principal()
        return get_db().run(principal, lambda conn: service.create_communication(conn, principal, data))


@blp.route("/<uuid:communication_id>")
class CommunicationById(MethodView):
    @blp.response(200, CommunicationDetail)
    def get(self, communication_id: uuid.UUID):
        """One communication with its channel metadata and attachments."""
        communication = get_db().run(current_principal(),
                                     lambda conn: service.get_communication(conn, communication_id))
        if communication is None:
            raise ApiError(404, f"communication {communication_id} not found", "not_found")
        return communication
