"""A bounded, ordered queue on disk of append-only segment files: the InfluxDB export's buffer.

- `queue`: `SegmentQueue`, its bound, its acknowledgements and the rewriting of dead segments;
- `format`: the segment and state files' layout, and `read_queue` to inspect a folder read only;
- `files`: whole writes, a best-effort cut and a folder's fsync.

docs/design/storage.md says why segment files and not a database.
"""

from gateway.storage.segqueue.format import RECORD_OVERHEAD, SEGMENT_MAGIC, Entry, read_queue
from gateway.storage.segqueue.queue import SegmentQueue

__all__ = ["RECORD_OVERHEAD", "SEGMENT_MAGIC", "Entry", "SegmentQueue", "read_queue"]
