from services.chassis.migrations import run_alembic_env
from services.notifications.models import Base

run_alembic_env(Base.metadata)
