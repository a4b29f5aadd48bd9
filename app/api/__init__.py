"""The REST API: flask-smorest blueprints, OpenAPI document and interactive docs."""
from __future__ import annotations

import functools
from pathlib import Path

import flask_smorest
from flask import Flask, Response, g, request
from flask_smorest import Api as SmorestApi
from marshmallow import Schema, fields
from webargs import core
from webargs.flaskparser import FlaskParser

from app import audience
from app.errors import http_error_response
from app.inputs import has_json_body, json_body


class CheckedBodyParser(FlaskParser):
    """webargs' parser, reading the body app.inputs already checked and parsed (never a second
    parse, never a body of another content type read as none)."""

    def _raw_load_json(self, req):
        return json_body() if has_json_body() else core.missing


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, its arguments read by CheckedBodyParser, and every answer shaped
    for its caller by the one table of who sees which field (app/audience.py)."""

    ARGUMENTS_PARSER = CheckedBodyParser()

    def response(self, status_code, schema=None, **kwargs):
        """As flask-smorest's, and then the answer's fields a caller may not see are left out.
        A response schema the table does not know stops the app at import: a new endpoint
        cannot forget who sees what."""
        if schema is not None:
            audience.annotate_schemas(audience.schema_tree(schema))  # who sees each field, in the document
        document = super().response(status_code, schema, **kwargs)
        resource = None
        if schema is not None:
            resource = schema.__name__ if isinstance(schema, type) else type(schema).__name__
            if resource in audience.UNSHAPED:
                resource = None
            elif resource not in audience.RESOURCES:
                raise LookupError(f"{resource}: say in app/audience.py who sees each of its fields")

        def decorator(func):
            documented = document(func)
            if resource is None:
                return documented

            @functools.wraps(documented)
            def shaped(*args, **kw):
                return shape_response(resource, documented(*args, **kw))

            return shaped

        return decorator


def shape_response(resource: str, response: Response) -> Response:
    """The one place a REST answer leaves the service: its fields as the caller may see them
    (HIL people and the service see every field: their answers pass as built)."""
    kind = audience.kind_of(g.get("principal"))  # nobody known: the narrowest
    if kind in audience.SEES_EVERYTHING or not 200 <= response.status_code < 300 or not response.is_json:
        return response
    response.set_data(audience.shape_json_text(resource, response.get_data(), kind))
    return response


def json_response(text: str) -> Response:
    """Documents built by PostgreSQL pass through as they are (the schemas still document them)."""
    return Response(text, mimetype="application/json")


class ErrorFields(Schema):
    code = fields.String(required=True, metadata={"description": "machine-readable code, e.g. validation_error"})
    message = fields.String(required=True)
    details = fields.Raw(required=True, allow_none=True, metadata={"description": "what was wrong, by field"})
    request_id = fields.String(required=True, allow_none=True, data_key="requestId")


class ErrorResponse(Schema):
    """The one error shape (app/errors.py)."""

    error = fields.Nested(ErrorFields, required=True)


class Api(SmorestApi):
    """flask-smorest's Api, answering errors in the service's one error shape and documenting it."""

    ERROR_SCHEMA = ErrorResponse

    def handle_http_exception(self, error):
        return http_error_response(error)


SWAGGER_UI_ASSETS = "/api/docs/assets"


API_CONFIG = {
    "API_TITLE": "Rexera companion API",
    "API_VERSION": "1.0.0",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "/docs",
    # Swagger UI's files are served by the service (swagger-ui-bundle, pinned in requirements.txt):
    # /api/docs works with no internet.
    "OPENAPI_SWAGGER_UI_URL": SWAGGER_UI_ASSETS + "/",
    "API_SPEC_OPTIONS": {
        "info": {"description": "Workflows, tasks, communications, documents and counterparties of the Rexera "
                                "back office, with actions, views and a realtime event stream.\n\n"
                                "Every request: a person's token has role \"authenticated\" and a profile that is "
                                "active (else 401 invalid_token or person_inactive); bodies are JSON "
                                "objects (Content-Type: application/json, else 415; empty 400 missing_body; not JSON, "
                                "NaN, Infinity or a number out of range 400 invalid_body; not an object 422; over "
                                "1,000,000 bytes 413); each query parameter is given once (lists are comma-separated; a "
                                "repeat is 422 repeated_parameter); NUL and lone surrogates anywhere are 422 "
                                "unstorable_text naming the field; a row you may not see answers as one that does "
                                "not exist. Every error has the one shape below."},
        "components": {"securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "A Supabase access token; role, user type and client come from its app_metadata."},
            "agentKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                         "description": "Agents: the API key with X-Agent-Name and X-Workflow-Scope (a workflow id). "
                                        "The agent sees that workflow only while it has work in it (a task assigned to "
                                        "it, or an attempt it made); any other scope shows nothing."},
            "cronSecret": {"type": "http", "scheme": "bearer",
                           "description": "The tick only: the deployment's CRON_SECRET (Vercel Cron sends it)."},
        }},
        "security": [{"bearerAuth": []}, {"agentKey": []}],
    },
}


DOCS_CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; base-uri 'none'; "
                                "form-action 'self'; frame-ancestors 'none'")


def init_app(app: Flask) -> None:
    for key, value in API_CONFIG.items():
        app.config.setdefault(key, value)
    api = Api(app)
    from app.api import communications, counterparties, documents, health, internal, tasks, views, workflows

    for module in (workflows, tasks, communications, documents, counterparties, views, health, internal):
        api.register_blueprint(module.blp)
    from app.schemas.workflows import PAYLOAD_SCHEMAS

    for schema in PAYLOAD_SCHEMAS.values():
        api.spec.components.schema(schema.__name__, schema=schema)
    from app.webhooks import openapi as webhooks

    webhooks.document(api)
    app.extensions["api"] = api

    import swagger_ui_bundle
    from flask import send_from_directory

    @app.get(SWAGGER_UI_ASSETS + "/<path:filename>")
    def swagger_ui_asset(filename: str):
        """Swagger UI's own files (swagger-ui 4.15.5, Apache-2.0; the licence ships with the package)."""
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)

    @app.get("/api/docs/docs.js")
    def swagger_ui_start():
        """What starts Swagger UI (app/templates/swagger_ui.html carries no inline script)."""
        response = send_from_directory(Path(__file__).parent / "static", "docs.js", max_age=0)
        response.headers["Content-Type"] = "text/javascript; charset=utf-8"
        return response

    @app.after_request
    def docs_policy(response):
        # Swagger UI sets style attributes as it draws (React), hence style-src 'unsafe-inline';
        # no script but the service's own files.
        if request.path.startswith("/api/docs"):
            response.headers.setdefault("Content-Security-Policy", DOCS_CONTENT_SECURITY_POLICY)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
