"""Progress: the local SQLite (WAL) store of per-VM and per-disk work, surviving restarts."""
