"""Transport plugins shipped with botrun (wav, daily, agora)."""
