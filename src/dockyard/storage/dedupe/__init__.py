"""Dedupe: identical blobs of a root's repositories stored once.

Its one home. ``locations`` is the durable map digest -> blob files (a hint, repaired
when found stale, never the only copy of a fact: the files are the truth). ``sharing``
switches dedupe on and off and links a known copy in. ``adopt`` records and links the
blobs of a root filled by something else, or published while dedupe was off (on object
storage ``adopt_shared`` turns full copies into references). On object storage,
``shared_copies`` and ``leftover_entries`` are GC of the root's shared copies and of the
entries beside them that a crash left naming no reference.
"""
