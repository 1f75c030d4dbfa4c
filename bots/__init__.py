"""The ``botrun`` command line, the runner and the example bots."""
