from services.core.config import ServiceName
from services.core.service import run_service
from services.licence.app import build

run_service(ServiceName.LICENCE, build)
