from services.core.migrations import run_env
from services.licence.store import metadata

run_env(metadata)
