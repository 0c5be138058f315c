"""Alertmanager-compatible configuration: YAML in, validated typed values out."""
