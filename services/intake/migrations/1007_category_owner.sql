-- Which service serves a need of each category, as data: an operator may
-- move a category to another owner with one UPDATE, and every need opened
-- afterwards follows it (needs already opened keep the owner they were
-- handed to). A need that names an agency program goes to referral
-- whatever this table says.
CREATE TABLE category_owner (
    category text PRIMARY KEY,
    owner    text NOT NULL CHECK (owner IN ('MENTORING', 'BUYERS', 'REFERRAL'))
);

INSERT INTO category_owner (category, owner) VALUES
    ('MENTORING',              'MENTORING'),
    ('BUYER_DISCOVERY',        'BUYERS'),
    ('SAMPLE_TEST_MARKETING',  'BUYERS'),
    ('TRADE_SHOW_FOLLOW_UP',   'BUYERS'),
    ('MARKET_DIVERSIFICATION', 'BUYERS'),
    ('EXPORT_FINANCE',         'REFERRAL'),
    ('CERTIFICATION',          'REFERRAL'),
    ('MARKETING',              'REFERRAL'),
    ('INTERPRETATION',         'REFERRAL'),
    ('LOGISTICS',              'REFERRAL'),
    ('TRAINING',               'REFERRAL'),
    ('LEGAL_IP',               'REFERRAL');

-- The agency program a partner chose for the need; referral routes the
-- need there first.
ALTER TABLE need ADD COLUMN program_id text NOT NULL DEFAULT '';
