"""Create OAuth2 clients, refresh tokens, authorization codes and signing keys.

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _timestamp(name, nullable=False, default=False):
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if default else None,
    )


def upgrade():
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=True),
        sa.Column(
            "grant_types", postgresql.ARRAY(sa.String(32)), nullable=False, server_default="{}"
        ),
        sa.Column("scopes", postgresql.ARRAY(sa.String(64)), nullable=False, server_default="{}"),
        sa.Column(
            "redirect_uris", postgresql.ARRAY(sa.Text()), nullable=False, server_default="{}"
        ),
        _timestamp("created_at", default=True),
        _timestamp("updated_at", default=True),
        sa.PrimaryKeyConstraint("client_id", name="pk_oauth_clients"),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        _timestamp("issued_at"),
        _timestamp("expires_at"),
        _timestamp("used_at", nullable=True),
        _timestamp("revoked_at", nullable=True),
        sa.Column("revoked_reason", sa.String(64), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.create_table(
        "authorization_codes",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("code_challenge_method", sa.String(16), nullable=False),
        sa.Column("nonce", sa.String(255), nullable=True),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        _timestamp("created_at"),
        _timestamp("expires_at"),
        _timestamp("used_at", nullable=True),
        _timestamp("revoked_at", nullable=True),
        sa.UniqueConstraint("code_hash", name="uq_authorization_codes_code_hash"),
    )
    op.create_index("ix_authorization_codes_family_id", "authorization_codes", ["family_id"])
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(128), primary_key=True),
        sa.Column("private_pem", sa.Text(), nullable=False),
        sa.Column("public_jwk", postgresql.JSONB(), nullable=False),
        _timestamp("created_at"),
        _timestamp("retired_at", nullable=True),
    )
    op.create_index(
        "ix_signing_keys_current",
        "signing_keys",
        ["created_at"],
        postgresql_where=sa.text("retired_at IS NULL"),
    )


def downgrade():
    op.drop_table("signing_keys")
    op.drop_table("authorization_codes")
    op.drop_table("refresh_tokens")
    op.drop_table("oauth_clients")
