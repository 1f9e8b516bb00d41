"""Maintenance (PRODUCT §5): meters from readings, tickets from alarms and plans, service targets.

- `component`: the `Maintenance` component — hooks, plans, alarm tickets, what the API calls;
- `meters`: the site's meters, fed by readings;
- `work_mutes`: alarms out of service while work is in progress;
- `outbox`: ticket changes committed, then published; other writers' rows followed;
- `ledger`: the equipment ledger;
- `records`: small shapes they share.
"""

from gateway.maintenance.component import Maintenance, build
from gateway.maintenance.meters import METER_POINTS

__all__ = ["METER_POINTS", "Maintenance", "build"]
