"""Errors raised by the template engine, worded as Go's text/template words them."""

from __future__ import annotations


class TemplateError(Exception):
    """Any template failure; ``str()`` is the message Go would print."""


class TemplateParseError(TemplateError):
    """The text is not a valid template: ``template: <name>:<line>: <message>``."""


class TemplateExecError(TemplateError):
    """Execution failed: ``template: <name>:<line>:<col>: executing "<tmpl>" at <node>: …``."""


class FunctionError(Exception):
    """Raised by a template function; the executor wraps it as ``error calling <fn>: …``."""
