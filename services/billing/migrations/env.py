from services.billing.store import metadata
from services.core.migrations import run_env

run_env(metadata)
