"""Media relay: a WebRTC SFU that forwards encoded media to subscribers without transcoding."""
