"""Decorators and helpers that instrument agent code with OpenTelemetry spans.

Depends on ``opentelemetry-api`` only: a library that instruments its agents needs nothing else.
"""
