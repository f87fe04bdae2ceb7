"""The payment token leaves the bus: scrub it from the outbox, keep it only while needed.

``orders.payment_requested`` version 1 carried the card's payment token, so it
sat in the outbox (published rows are kept for days), in dead letters and at
every consumer. Version 2 does not: billing reads the token over RPC while the
order is reserved. This migration removes the token from stored
``payment_requested`` rows, drops the tokens of orders that no longer need one,
and makes the rule a CHECK: only a pending or reserved order holds a token.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CHECK = "ck_orders_payment_token_while_open"
_HOLDS_TOKEN = "status IN ('pending', 'reserved')"


def upgrade():
    op.execute(
        "UPDATE outbox_events SET envelope = envelope #- '{data,payment_token}' "
        "WHERE event_type = 'payment_requested' AND envelope -> 'data' ? 'payment_token'"
    )
    op.execute(f"UPDATE orders SET payment_token = NULL WHERE NOT ({_HOLDS_TOKEN})")
    op.create_check_constraint(CHECK, "orders", f"payment_token IS NULL OR {_HOLDS_TOKEN}")


def downgrade():
    op.drop_constraint(CHECK, "orders", type_="check")
