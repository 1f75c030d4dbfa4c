"""Constants shared by light and heavy modules (importing this costs nothing)."""

DEFAULT_AGENT_URL = "wss://agents.assemblyai.com/v1/ws"
#: The voice agent speaks and listens at 24 kHz PCM16 (the only rate that works live).
AGENT_SAMPLE_RATE = 24000
#: Largest tool result sent to the agent (UTF-8 bytes of its JSON); bigger ones are cut with a
#: note. The tool.result message carries the result as an escaped string, so even worst-case
#: escaping stays far below an agent's message limit (the simulator's is 1 MiB), and a language
#: model reads 16 KB of JSON without trouble.
DEFAULT_TOOL_RESULT_MAX_BYTES = 16 * 1024
