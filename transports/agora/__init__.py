"""Agora transport plugin (pip install botrun[agora])."""
