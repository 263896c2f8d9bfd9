"""Process-wide memory tuning for ``serve``: large buffers go back to the system when freed.

glibc serves an allocation above ``M_MMAP_THRESHOLD`` with its own mapping, returned to the
system on free, but it raises that threshold to the size of every such block freed (up to
32 MiB). After the first large body, the megabyte buffers of the next ones (a body's bytes, its
JSON for the store, the answer) come from the heap instead, where freed memory stays in the
process and fragments across the worker threads' arenas. Measured with four concurrent 24 MB
submissions: peak RSS 350-410 MB with the sliding threshold, about 300 MB with it fixed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD = 1024 * 1024


def return_large_buffers() -> bool:
    """Fix glibc's mmap threshold at 1 MiB (setting it stops the sliding); False elsewhere."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    if not done:
        log.warning("could not fix the malloc mmap threshold; large bodies may keep memory")
    return done
