"""Helpers of bench/relay_vs_janus.py: the load generator, the two SFUs, Janus and its loopback shim."""
