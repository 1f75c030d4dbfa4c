"""Double of ``agora.rtc``: the real one loads ``libagora_rtc_sdk`` with ctypes here."""
