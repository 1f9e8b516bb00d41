"""Alarm notifications: e-mail (SMTP) and webhooks (HTTP POST), driven by the escalation policy.

`rules.escalation` decides when and to whom (pure); `message` writes the text (both languages);
`email` and `webhook` carry it; `component` wires them into the gateway as a component.
"""
