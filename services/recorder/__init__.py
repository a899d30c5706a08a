"""Recorder: cloud recording of rooms (seed 002 appendix 7) into the object store."""
