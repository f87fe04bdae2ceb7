from services.chassis.migrations import run_alembic_env
from services.orders.models import Base

run_alembic_env(Base.metadata)
