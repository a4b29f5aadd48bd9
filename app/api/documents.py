"""Documents: list, register (a new version of a deliverable supersedes the last), read."""
from __future__ import annotations

import uuid

from flask.views import MethodView

from app.api import Blueprint
from app.auth import current_principal
from app.db import get_db
from app.errors import ApiError
from app.schemas.documents import Document, DocumentCreate, DocumentList, DocumentListArgs
from app.services import documents as service

blp = Blueprint("documents", __name__, url_prefix="/api/documents",
                description="Working files, attachments and versioned deliverables of a workflow")


@blp.route("")
class Documents(MethodView):
    @blp.arguments(DocumentListArgs(), location="query")
    @blp.response(200, DocumentList)
    def get(self, args):
        """List the documents you may see, newest first (clients: client-visible ones only)."""
        return get_db().run(current_principal(), lambda conn: service.list_documents(conn, args))

    @blp.arguments(DocumentCreate())
    @blp.response(201, Document)
    def post(self, data):
        """Register a document (the file itself lives in Storage at storagePath).

        A DELIVERABLE whose deliverableKey the workflow already has becomes its next version and
        the previous version turns SUPERSEDED, atomically. Client users may register only
        client-visible ATTACHMENTs on their own workflows."""
        principal = current_principal()
        return get_db().run(principal, lambda conn: service.create_document(conn, principal, data))


@blp.route("/<uuid:document_id>")
class DocumentById(MethodView):
    @blp.response(200, Document)
    def get(self, document_id: uuid.UUID):
        """One document with its tags."""
        document = get_db().run(current_principal(), lambda conn: service.get_document(conn, document_id))
        if document is None:
            raise ApiError(404, f"document {document_id} not found", "not_found")
        return document
