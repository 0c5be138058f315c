"""The notification history: every notification attempt, kept in SQLite and queryable.

* :mod:`~daemon.history.record`: the record and the reason decision (pure).
* :mod:`~daemon.history.query`: query parameters, SQL, the paging cursor (pure).
* :mod:`~daemon.history.codec`: the table schema and the row codec (pure).
* :mod:`~daemon.history.database`: the synchronous SQLite calls (run in threads).
* :mod:`~daemon.history.store`: the trio service: intake, writer actor, pruning, queries.
* :mod:`~daemon.history.export`: JSON-lines and webhook sinks.
"""
