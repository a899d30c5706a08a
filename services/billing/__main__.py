from services.billing.app import build
from services.core.config import ServiceName
from services.core.service import run_service

run_service(ServiceName.BILLING, build)
