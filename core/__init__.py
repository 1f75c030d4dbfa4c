"""botrun core: transport-agnostic bridge, agent protocol, audio, plugins and config.

Nothing heavy is imported here: `botrun --help` must stay instant.
"""
