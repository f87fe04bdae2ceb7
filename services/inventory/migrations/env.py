from services.chassis.migrations import run_alembic_env
from services.inventory.models import Base

run_alembic_env(Base.metadata)
