"""The web UI: page shells rendered with Jinja2 and one hand-written script (see pages.py)."""
