"""Routing tree, aggregation groups and the route-group actors."""
