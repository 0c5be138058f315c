"""Integrations: one module per receiver type."""
