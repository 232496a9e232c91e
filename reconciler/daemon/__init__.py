"""The reconcile loop: one pass at a time, triggered by pushes or unfinished work."""
