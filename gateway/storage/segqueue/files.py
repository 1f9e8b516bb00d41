"""File writes for the queue: whole `pwritev`s, a best-effort cut, a folder's fsync."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from gateway.storage.segqueue.format import Segment

IOV_MAX = 1024
"""Buffers per `pwritev` call (Linux's limit)."""


def write_all(fd: int, buffers: list[bytes], offset: int) -> None:
    """`pwritev` all of `buffers` at `offset` (in groups of `IOV_MAX`, resuming short writes).

    Raises:
        OSError: the kernel refused (ENOSPC when a short write made no progress).
    """
    pending = [memoryview(b) for b in buffers if b]
    while pending:
        group = pending[:IOV_MAX]
        written = os.pwritev(fd, group, offset)
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        offset += written
        while written:
            first = pending[0]
            if written >= len(first):
                written -= len(first)
                pending.pop(0)
            else:
                pending[0] = first[written:]
                written = 0


def truncate(segment: Segment, length: int) -> None:
    """Best effort: the next append writes at `length` anyway, and an open cuts a torn tail."""
    if segment.fd is not None:
        with contextlib.suppress(OSError):
            os.ftruncate(segment.fd, length)


def sync_folder(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
