from services.billing.ledger import metadata
from services.core.migrations import run_env

run_env(metadata)
