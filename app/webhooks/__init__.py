"""Webhooks: the signed n8n callbacks and the inbound webhooks of outside parties."""
