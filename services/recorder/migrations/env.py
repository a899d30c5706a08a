from services.core.migrations import run_env
from services.recorder.store import metadata

run_env(metadata)
