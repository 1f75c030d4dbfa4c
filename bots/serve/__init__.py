"""``botrun serve``: answers Daily's pinless dial-in webhook and runs one bot process per
call (or per ``POST /start``), within a concurrency limit and a per-bot time limit."""
