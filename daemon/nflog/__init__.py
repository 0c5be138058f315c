"""The notification log: the state (dedup queries, merge, maintenance) and its wire codec."""
