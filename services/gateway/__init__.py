"""Signalling gateway: the public WebSocket protocol and HTTP API, holding nothing durable."""
