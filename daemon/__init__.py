"""tocsin: an Alertmanager-compatible alert manager on trio."""

__version__ = "0.1.0"
