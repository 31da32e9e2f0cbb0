"""The nightly job at scale: the launcher (queue, worker processes, live view, summary) in `launcher`, and the
long-lived worker that keeps its models warm across studies in `worker`.

Imports: every lower package, up to `views`.
"""
