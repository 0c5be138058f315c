"""Test helpers for cluster code: an in-memory network with loss, delay and partitions."""
