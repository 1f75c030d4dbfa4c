"""``botrun worker``: takes call jobs from the fleet's queue and runs each in a warm bot
process (see :mod:`botrun.bots.fleet`)."""
