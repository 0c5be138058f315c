"""The notification pipeline: stages between a group flush and a receiver."""
