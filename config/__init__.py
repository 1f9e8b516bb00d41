"""The site file, validated into typed models with file:line errors; templates and playbooks as data.

Above `ground`, below `drivers`, `rules`, `simulators` and `gateway` (docs/architecture.md).
"""
