"""Constants shared by light and heavy modules (importing this costs nothing)."""

DEFAULT_AGENT_URL = "wss://agents.assemblyai.com/v1/ws"
#: The voice agent speaks and listens at 24 kHz PCM16 (the only rate that works live).
AGENT_SAMPLE_RATE = 24000
