"""``python -m otel_dashboard``: the ``otel-dashboard`` command."""

from otel_dashboard.cli import main

raise SystemExit(main())
