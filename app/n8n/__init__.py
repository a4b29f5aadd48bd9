"""Talking to n8n: the outbox dispatcher (triggers, stops, resumes)."""
