"""Notification templating: the data model handed to templates (:mod:`.data`) and the engine."""
