"""Double of agora-python-server-sdk 2.4.x (``agora`` package). See ../README.md.

The real package checks and downloads the native library here and may ``sys.exit(1)``; the
double's native layer is :mod:`agora_cloud`, so there is nothing to load.
"""
