from services.core.migrations import run_env
from services.licence.tables import metadata

run_env(metadata)
