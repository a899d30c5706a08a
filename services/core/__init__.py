"""What every Parley service shares: settings, logs, tracing, events, gRPC and database helpers."""
