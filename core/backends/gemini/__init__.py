"""The Gemini Live backend: ``protocol`` (sans-I/O) and ``client`` (I/O)."""
