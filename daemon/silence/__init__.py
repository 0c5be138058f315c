"""Silences: the state (matching, updates, merge, maintenance) and its wire codec."""
