"""From the agent's spans to the dashboard: the span processor, the span exporter and the remote
sender that ships events to a server over HTTP.

Nothing is imported here: each module is loaded by whoever needs it.
"""
