"""The transfer engine: copies disk extents from a source reader to a target writer."""
