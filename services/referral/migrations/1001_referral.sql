-- The directory. The wire message is kept whole (body) so the record and
-- the API never drift; the columns are what routing and lists query on.
CREATE TABLE agency (
    agency_id  text        PRIMARY KEY,
    body       bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE program (
    program_id   text        PRIMARY KEY,
    agency_id    text        NOT NULL REFERENCES agency (agency_id),
    status       text        NOT NULL,
    categories   text[]      NOT NULL,
    regions      text[]      NOT NULL,
    total_slots  integer     NOT NULL CHECK (total_slots >= 1),
    -- Only ever moved by a conditional UPDATE, so two accepts racing for
    -- the last slot cannot both win.
    slots_in_use integer     NOT NULL DEFAULT 0 CHECK (slots_in_use >= 0),
    availability text        NOT NULL,
    body         bytea       NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX program_by_agency ON program (agency_id, program_id);
CREATE INDEX program_by_category ON program USING gin (categories);

CREATE TABLE referral (
    id          uuid        PRIMARY KEY,
    -- The hand-off key: one referral per need, whatever the retries.
    need_id     text        NOT NULL UNIQUE,
    case_id     text        NOT NULL,
    company_id  text        NOT NULL,
    category    text        NOT NULL,
    status      text        NOT NULL,
    body        bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE INDEX referral_by_status ON referral (status, id);
CREATE INDEX referral_by_case ON referral (case_id, id);
CREATE INDEX referral_by_company ON referral (company_id, id);

-- One row per leg, mirrored from the referral's body, for the agency inbox
-- and the SLA sweeper.
CREATE TABLE referral_leg (
    referral_id uuid        NOT NULL REFERENCES referral (id) ON DELETE CASCADE,
    leg_number  integer     NOT NULL,
    program_id  text        NOT NULL,
    agency_id   text        NOT NULL,
    status      text        NOT NULL,
    sla_due_at  timestamptz NOT NULL,
    PRIMARY KEY (referral_id, leg_number)
);

CREATE INDEX referral_leg_by_agency ON referral_leg (agency_id, referral_id);
CREATE INDEX referral_leg_by_program ON referral_leg (program_id, referral_id);
CREATE INDEX referral_leg_awaiting ON referral_leg (sla_due_at) WHERE status = 'SENT';
