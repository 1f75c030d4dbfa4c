"""WAV-file transport: participants from WAV files, the bot recorded to a WAV file."""
