"""Room manager: rooms, participants, feeds, subscriptions, device calls and relay placement."""
