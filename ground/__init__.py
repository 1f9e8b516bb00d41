"""The ground layer: the reading model, durations, back-off, task helpers, cron and the expression language.

It imports nothing else of the project; every other package may import it (docs/architecture.md).
"""
