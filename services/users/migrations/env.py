from services.chassis.migrations import run_alembic_env
from services.users.models import Base

run_alembic_env(Base.metadata)
