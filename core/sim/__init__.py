"""Local voice-agent simulator (`botrun agent-sim`)."""
