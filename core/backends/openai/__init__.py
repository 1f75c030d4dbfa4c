"""The OpenAI Realtime (GA) backend: ``protocol`` (sans-I/O) and ``client`` (I/O)."""
