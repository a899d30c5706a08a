"""Media plumbing shared by the services that carry media (the relay and the recorder): aiortc hooks that
hand over encoded frames without decoding, the jitter buffer behind them, bitstream parsing, and where
peer connections gather ICE candidates."""
