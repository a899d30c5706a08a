"""Billing metering: the usage ledger built from metering ticks and room events, usage statistics,
account balances and status."""
