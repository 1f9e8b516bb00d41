"""Local history: each point's changes and exact minute aggregates, written in few, large pieces.

The console's trends and `GET /api/v1/points/{device}/{point}/history` read from here; it needs no
database server. Its own file, `<storage>/history.sqlite3`, keeps the alarm journal's file small and
its writes (many, cheap) apart from the journal's (few, fsynced). Nothing is rewritten in place per
point: commits append one block of every point, and hours past are compacted into one row per
point and hour, appended too (docs/design/storage.md says why, for a flash card).

One job per module:

- `store`: `HistoryStore`, the writer thread, its buffers and the public API;
- `rows`: a reading into its sample (when the deadband keeps it) and its minute;
- `minutes`: the open minute of each point and the minutes done;
- `layout`: the file's tables, the blocks written and the chunks read;
- `compact`: an hour's blocks into one chunk per point;
- `prune`: the windows and the size bound;
- `query`: a point read back, as samples or minute buckets;
- `component`: the gateway component that feeds the store (named in `gateway.registry`; the
  package does not import it, so the store does not depend on the gateway's component contract).
"""

from gateway.storage.history.layout import HOUR
from gateway.storage.history.store import DeadbandOf, HistoryStore

__all__ = ["HOUR", "DeadbandOf", "HistoryStore"]
