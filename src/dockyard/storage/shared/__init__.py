"""Coordination of replicas through a shared Redis (zot's ``cacheDriver``): the locks, the
background lease, the change counter and (in ``dedupe/redis_locations.py``) the dedupe map.

Redis holds no fact that the storage does not also hold: every key here is a lock, a
lease, a counter or a hint, and a ``FLUSHALL`` costs a retry or a rebuild, never an image.
"""
