"""The planner: (desired, observed, progress) -> decisions. Pure: no I/O, tested without any."""
