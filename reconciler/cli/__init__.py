"""The command line: thin wrappers that call the core and render its results."""
