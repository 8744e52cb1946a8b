"""The threads upload bytes are written and hashed in, and how many uploads stream at once.

One per store, made with it and shut down with it (``Store.close``), never at import: a
process may hold several stores (tests, the workers of a later issue), and each must own
what it started.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

#: Threads that write and hash upload batches (hashlib and os.write release the GIL).
THREADS = 8
#: How many uploads of a burst stream their bodies at once (see ``Uploads.append``).
STREAMING = 8


class UploadPool:
    """The write-and-hash threads and the admission of a burst of uploads."""

    def __init__(self, threads: int = THREADS, streaming: int = STREAMING) -> None:
        # Threads start on first use; the semaphore binds to the loop it is first used on.
        self.io = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="upload-io"
        )
        self.admission = asyncio.Semaphore(streaming)

    def close(self) -> None:
        """Stop the threads once the writes handed to them are done."""
        self.io.shutdown(wait=True)
