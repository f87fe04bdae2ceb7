from services.billing.models import Base
from services.chassis.migrations import run_alembic_env

run_alembic_env(Base.metadata)
