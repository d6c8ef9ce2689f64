"""The master's object store: uploads, results, logs and wheels under objects/<aa>/<sha256>
(runsurge_proto.objects.ContentStore, the same as a worker's cache)."""

from runsurge_proto.objects import ContentStore


class ObjectStore(ContentStore):
    """What the master adds: nothing but where it lives (cfg.store_dir); its garbage collection is
    store_gc.py, over the database's references."""
