"""The transactional outbox and the inbox of handled events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from alembic import op

from services.chassis.events import create_event_tables, drop_event_tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    create_event_tables(op)


def downgrade():
    drop_event_tables(op)
