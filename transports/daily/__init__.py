"""Daily transport plugin (pip install botrun[daily])."""
