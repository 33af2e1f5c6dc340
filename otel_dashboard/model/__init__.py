"""The event model and everything that turns telemetry into events: no aiohttp, no server.

* :mod:`~otel_dashboard.model.events`: the ten event types, :class:`DashboardEvent`, its JSON form.
* :mod:`~otel_dashboard.model.mapping`: finished and started spans to events.
* :mod:`~otel_dashboard.model.otlp`: OTLP/HTTP request bodies (protobuf and JSON) to spans.
* :mod:`~otel_dashboard.model.ingest`: the validation of ``POST /api/events`` bodies.
* :mod:`~otel_dashboard.model.filters`: the event filter of ``subscribe`` and ``/api/events``.

Nothing is imported here: each module is loaded by whoever needs it.
"""
