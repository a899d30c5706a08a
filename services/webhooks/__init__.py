"""Webhook dispatcher: HTTP callbacks to customers for room, recording and other events."""
