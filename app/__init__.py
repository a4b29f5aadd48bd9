"""Rexera companion backend: business layer of the dual-layer workflow system."""
