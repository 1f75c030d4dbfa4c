"""The ``browser`` transport: talk to the bot from a web page (``botrun web``/``browser``)."""
