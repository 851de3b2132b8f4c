-- Cursors on the owners' feeds move to the platform's table, which every
-- service that follows a feed uses.
INSERT INTO followed_feed (source, last_event_id, epoch)
    SELECT source, last_event_id, epoch FROM feed_cursor
    ON CONFLICT (source) DO NOTHING;
DROP TABLE feed_cursor;

-- The company's consent to share its business profile across the one-stop
-- network, as recorded at registration ('' scope: none).
ALTER TABLE company
    ADD COLUMN consent_scope         text NOT NULL DEFAULT '',
    ADD COLUMN consent_terms_version text NOT NULL DEFAULT '',
    ADD COLUMN consent_recorded_by   text NOT NULL DEFAULT '',
    ADD COLUMN consent_recorded_at   timestamptz;

-- Who works with whom: one row per reason a partner works (or worked) with
-- a company. A partner works with the company while any of its rows is not
-- ENDED; ended rows stay for history.
CREATE TABLE company_partner (
    company_id uuid        NOT NULL REFERENCES company (id),
    role       text        NOT NULL,
    tenant     text        NOT NULL,
    source     text        NOT NULL,
    -- The referral, assignment or match behind it; '' for registrations,
    -- consented cases and grants.
    reference  text        NOT NULL DEFAULT '',
    state      text        NOT NULL,
    since      timestamptz NOT NULL DEFAULT now(),
    until      timestamptz,
    PRIMARY KEY (company_id, role, tenant, source, reference)
);

CREATE INDEX company_partner_active ON company_partner (role, tenant, company_id)
    WHERE state <> 'ENDED';

-- A timeline line only one agency may read among agencies: a decline or an
-- SLA breach, which names the agency whose leg it was.
ALTER TABLE case_timeline ADD COLUMN agency_only text;

-- Each service's part of erasing a company's personal data: intake's at
-- once, the owners' when they report it on their feeds.
CREATE TABLE erasure (
    company_id   uuid        NOT NULL REFERENCES company (id),
    service      text        NOT NULL,
    requested_at timestamptz NOT NULL,
    erased_at    timestamptz,
    -- [{"kind": "contacts", "count": 2}, ...]
    erased       jsonb       NOT NULL DEFAULT '[]',
    PRIMARY KEY (company_id, service)
);
