"""Counterparties: list, create with contacts, read, and link to workflows."""
from __future__ import annotations

import uuid

from flask.views import MethodView

from app.api import Blueprint
from app.auth import current_principal
from app.db import get_db
from app.schemas.counterparties import (Counterparty, CounterpartyCreate, CounterpartyList, CounterpartyListArgs,
                                        LinkCreate, LinkUpdate, WorkflowLink)
from app.services import counterparties as service

blp = Blueprint("counterparties", __name__, url_prefix="/api/counterparties",
                description="HOAs, lenders, municipalities, utilities and tax authorities, and their workflows")


@blp.route("")
class Counterparties(MethodView):
    @blp.arguments(CounterpartyListArgs(), location="query")
    @blp.response(200, CounterpartyList)
    def get(self, args):
        """List the counterparties you may see (clients: those linked to their workflows)."""
        return get_db().run(current_principal(), lambda conn: service.list_counterparties(conn, args))

    @blp.arguments(CounterpartyCreate())
    @blp.response(201, Counterparty)
    def post(self, data):
        """Create a counterparty with its contacts (HIL people only)."""
        return get_db().run(current_principal(), lambda conn: service.create_counterparty(conn, data))


@blp.route("/<uuid:counterparty_id>")
class CounterpartyById(MethodView):
    @blp.response(200, Counterparty)
    def get(self, counterparty_id: uuid.UUID):
        """One counterparty with the contacts and workflow links you may see."""
        counterparty = get_db().run(current_principal(),
                                    lambda conn: service.get_counterparty(conn, counterparty_id))
        if counterparty is None:
            raise service.not_found(counterparty_id)
        return counterparty


@blp.route("/<uuid:counterparty_id>/workflows")
class CounterpartyWorkflows(MethodView):
    @blp.arguments(LinkCreate())
    @blp.response(201, WorkflowLink)
    def post(self, data, counterparty_id: uuid.UUID):
        """Link the counterparty to a workflow (HIL people only; the workflow type must allow its type)."""
        return get_db().run(current_principal(), lambda conn: service.link_workflow(conn, counterparty_id, data))


@blp.route("/<uuid:counterparty_id>/workflows/<uuid:workflow_id>")
class CounterpartyWorkflowLink(MethodView):
    @blp.arguments(LinkUpdate())
    @blp.response(200, WorkflowLink)
    def patch(self, data, counterparty_id: uuid.UUID, workflow_id: uuid.UUID):
        """Record how far the exchange with the counterparty has come on the workflow."""
        return get_db().run(current_principal(),
                            lambda conn: service.update_link(conn, counterparty_id, workflow_id, data))

    @blp.response(204)
    def delete(self, counterparty_id: uuid.UUID, workflow_id: uuid.UUID):
        """Unlink the counterparty from the workflow (HIL people only)."""
        get_db().run(current_principal(), lambda conn: service.unlink_workflow(conn, counterparty_id, workflow_id))
