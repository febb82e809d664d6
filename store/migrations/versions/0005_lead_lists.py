"""lead lists at a million leads: indexes for stale, score and last-contact pages

Revision ID: 0005_lead_lists
Revises: 0004_language

Measured with benchmarks/lead_query.py at 1,000,000 leads on PostgreSQL. The newest-first index
also carries each lead's last activity (last contact, or creation if never contacted), so a stale
page skips the recent leads inside the index instead of visiting their rows; the score index ends
with the id, the sort's tie-breaker, so a page by score reads it in order; and on PostgreSQL "last
contact, newest first" (never-contacted leads last) gets an index in that order. Data is untouched.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_lead_lists'
down_revision = '0004_language'
branch_labels = None
depends_on = None

LIVE = {'sqlite_where': sa.text('merged_into_id IS NULL'),
        'postgresql_where': sa.text('merged_into_id IS NULL')}


def upgrade() -> None:
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_index('ix_leads_live_created')
        batch_op.drop_index('ix_leads_live_score')
        batch_op.create_index(
            'ix_leads_live_created',
            ['archived', 'created_at', sa.text('coalesce(last_contacted_at, created_at)')],
            unique=False, **LIVE)
        batch_op.create_index('ix_leads_live_score', ['archived', 'score', 'id'], unique=False,
                              **LIVE)
    if op.get_bind().dialect.name == 'postgresql':
        op.create_index('ix_leads_live_contacted_desc', 'leads',
                        ['archived', sa.text('last_contacted_at DESC NULLS LAST'),
                         sa.text('id DESC')],
                        unique=False, postgresql_where=sa.text('merged_into_id IS NULL'))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_leads_live_contacted_desc', table_name='leads')
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_index('ix_leads_live_score')
        batch_op.drop_index('ix_leads_live_created')
        batch_op.create_index('ix_leads_live_score', ['archived', 'score'], unique=False, **LIVE)
        batch_op.create_index('ix_leads_live_created', ['archived', 'created_at'], unique=False,
                              **LIVE)
