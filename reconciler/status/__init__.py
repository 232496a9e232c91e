"""Status back to git: a projection of progress into Forklift-shaped status files."""
