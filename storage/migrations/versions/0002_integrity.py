"""integrity: the tables and columns this step of the schema adds

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Refused sign-ins, so that throttling holds across every process on the database.
    from storage.models import UTCDateTime

    op.create_table(
        'signin_failures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_signin_failures_name', 'signin_failures', ['name'])
    op.create_index('ix_signin_failures_address', 'signin_failures', ['address'])
    op.create_index('ix_signin_failures_created_at', 'signin_failures', ['created_at'])


def downgrade() -> None:
    op.drop_table('signin_failures')
