CREATE TABLE buyer (
    id                      uuid        PRIMARY KEY,
    trade_office_id         text        NOT NULL,
    company_name            text        NOT NULL,
    country                 text        NOT NULL,
    city                    text        NOT NULL,
    time_zone               text        NOT NULL,
    hs_codes                text[]      NOT NULL,
    industries_ksic         text[]      NOT NULL,
    import_volume_usd_minor bigint      NOT NULL CHECK (import_volume_usd_minor >= 0),
    languages               text[]      NOT NULL,
    external_ref            text,
    website                 text        NOT NULL,
    -- The latest vetting, copied from buyer_vetting for reads and matching.
    status                  text        NOT NULL,
    quality_score           integer     NOT NULL DEFAULT 0,
    criteria_met            text[]      NOT NULL DEFAULT '{}',
    vetted_at               timestamptz,
    vetted_by               text        NOT NULL DEFAULT '',
    vetting_note            text        NOT NULL DEFAULT '',
    registered_at           timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (trade_office_id, external_ref)
);

CREATE INDEX buyer_by_office ON buyer (trade_office_id, id);
CREATE INDEX buyer_by_country ON buyer (country, id);

-- Personal data lives here and nowhere else in buyers.
CREATE TABLE buyer_contact (
    buyer_id uuid    NOT NULL REFERENCES buyer (id) ON DELETE CASCADE,
    position integer NOT NULL,
    name     text    NOT NULL,
    title    text    NOT NULL,
    email    text    NOT NULL,
    phone    text    NOT NULL,
    PRIMARY KEY (buyer_id, position)
);

-- Every vetting decision, never updated.
CREATE TABLE buyer_vetting (
    id            bigserial   PRIMARY KEY,
    buyer_id      uuid        NOT NULL REFERENCES buyer (id) ON DELETE CASCADE,
    status        text        NOT NULL,
    quality_score integer     NOT NULL CHECK (quality_score BETWEEN 0 AND 100),
    criteria_met  text[]      NOT NULL,
    vetted_at     timestamptz NOT NULL,
    vetted_by     text        NOT NULL,
    note          text        NOT NULL
);

CREATE INDEX buyer_vetting_by_buyer ON buyer_vetting (buyer_id, id);

-- The matching index: one row per sought code of a VERIFIED buyer, carrying
-- what scoring needs, so a search never reads the buyer table. Rows are
-- rewritten whenever the buyer is vetted. Searches go level by level
-- (subheading, heading, chapter), each through its own index, and stop as
-- soon as the better levels fill the page.
CREATE TABLE buyer_hs (
    buyer_id      uuid        NOT NULL REFERENCES buyer (id) ON DELETE CASCADE,
    code          text        NOT NULL,
    heading       text        NOT NULL,
    chapter       text        NOT NULL,
    country       text        NOT NULL,
    languages     text[]      NOT NULL,
    quality_score integer     NOT NULL,
    vetted_at     timestamptz NOT NULL,
    PRIMARY KEY (buyer_id, code)
);

CREATE INDEX buyer_hs_by_code ON buyer_hs (code);
CREATE INDEX buyer_hs_by_heading ON buyer_hs (heading);
CREATE INDEX buyer_hs_by_chapter ON buyer_hs (chapter);

CREATE TABLE buyer_search (
    id             uuid        PRIMARY KEY,
    need_id        text        NOT NULL UNIQUE,
    case_id        text        NOT NULL,
    company_id     text        NOT NULL,
    requested      integer     NOT NULL,
    opened_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE buyer_match (
    id             uuid        PRIMARY KEY,
    search_id      uuid        REFERENCES buyer_search (id),
    need_id        text        NOT NULL,
    case_id        text        NOT NULL,
    company_id     text        NOT NULL,
    buyer_id       uuid        NOT NULL REFERENCES buyer (id),
    status         text        NOT NULL,
    -- Encoded onestop.buyers.v1.BuyerMatchScore, as scored when proposed.
    score          bytea       NOT NULL,
    rank           integer     NOT NULL,
    no_deal_reason text,
    proposed_at    timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- A company never has two open matches with one buyer.
CREATE UNIQUE INDEX buyer_match_open ON buyer_match (company_id, buyer_id)
    WHERE status NOT IN ('DEAL', 'CLOSED_NO_DEAL');
CREATE INDEX buyer_match_by_company ON buyer_match (company_id, id);
CREATE INDEX buyer_match_by_buyer ON buyer_match (buyer_id, id);
CREATE INDEX buyer_match_by_search ON buyer_match (search_id, rank);

CREATE TABLE match_transition (
    id             bigserial   PRIMARY KEY,
    match_id       uuid        NOT NULL REFERENCES buyer_match (id),
    from_status    text        NOT NULL,
    to_status      text        NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    actor          text        NOT NULL,
    no_deal_reason text,
    note           text        NOT NULL
);

CREATE INDEX match_transition_by_match ON match_transition (match_id, id);

CREATE TABLE deal (
    id              uuid        PRIMARY KEY,
    match_id        uuid        NOT NULL UNIQUE REFERENCES buyer_match (id),
    need_id         text        NOT NULL,
    case_id         text        NOT NULL,
    company_id      text        NOT NULL,
    buyer_id        uuid        NOT NULL REFERENCES buyer (id),
    trade_office_id text        NOT NULL,
    deal_type       text        NOT NULL,
    currency        text        NOT NULL,
    amount_minor    bigint      NOT NULL CHECK (amount_minor > 0),
    note            text        NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    recorded_by     text        NOT NULL,
    confirmed_at    timestamptz
);

CREATE INDEX deal_unconfirmed ON deal (recorded_at, id) WHERE confirmed_at IS NULL;

-- Slots sit on a 30-minute grid, so equal starts are the only overlaps.
CREATE TABLE consultation (
    id                   uuid        PRIMARY KEY,
    match_id             uuid        NOT NULL REFERENCES buyer_match (id),
    company_id           text        NOT NULL,
    buyer_id             uuid        NOT NULL REFERENCES buyer (id),
    start_at             timestamptz NOT NULL,
    end_at               timestamptz NOT NULL,
    buyer_time_zone      text        NOT NULL,
    interpreter_language text        NOT NULL,
    overseas_desk        boolean     NOT NULL,
    booked_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT consultation_buyer_slot UNIQUE (buyer_id, start_at),
    CONSTRAINT consultation_company_slot UNIQUE (company_id, start_at)
);

CREATE TABLE sample_test (
    id           uuid        PRIMARY KEY,
    company_id   text        NOT NULL,
    product_name text        NOT NULL,
    hs_code      text        NOT NULL,
    need_id      text        NOT NULL,
    case_id      text        NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);

CREATE TABLE sample_test_buyer (
    sample_test_id uuid    NOT NULL REFERENCES sample_test (id),
    position       integer NOT NULL,
    buyer_id       uuid    NOT NULL REFERENCES buyer (id),
    PRIMARY KEY (sample_test_id, buyer_id)
);

CREATE TABLE sample_feedback (
    id                 uuid        PRIMARY KEY,
    sample_test_id     uuid        NOT NULL REFERENCES sample_test (id),
    buyer_id           uuid        NOT NULL REFERENCES buyer (id),
    country            text        NOT NULL,
    price              integer     NOT NULL,
    quality            integer     NOT NULL,
    packaging          integer     NOT NULL,
    labelling          integer     NOT NULL,
    certification_gaps text[]      NOT NULL,
    would_order        boolean     NOT NULL,
    comment            text        NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (sample_test_id, buyer_id)
);

CREATE TABLE trade_show (
    id           uuid        PRIMARY KEY,
    company_id   text        NOT NULL,
    name         text        NOT NULL,
    country      text        NOT NULL,
    city         text        NOT NULL,
    show_date    timestamptz NOT NULL,
    need_id      text        NOT NULL,
    case_id      text        NOT NULL,
    UNIQUE (company_id, name, show_date)
);

CREATE TABLE lead (
    id                 uuid        PRIMARY KEY,
    trade_show_id      uuid        NOT NULL REFERENCES trade_show (id),
    company_id         text        NOT NULL,
    buyer_company_name text        NOT NULL,
    country            text        NOT NULL,
    city               text        NOT NULL,
    hs_codes           text[]      NOT NULL,
    note               text        NOT NULL,
    buyer_id           uuid,
    status             text        NOT NULL,
    best_outcome       integer     NOT NULL DEFAULT 0,
    last_outcome       integer     NOT NULL DEFAULT 0,
    last_follow_up_at  timestamptz,
    imported_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (trade_show_id, buyer_company_name, country)
);

CREATE INDEX lead_by_company ON lead (company_id, id);
CREATE INDEX lead_reactivation ON lead (id) WHERE status = 'REACTIVATION';

CREATE TABLE lead_contact (
    lead_id  uuid    NOT NULL REFERENCES lead (id) ON DELETE CASCADE,
    position integer NOT NULL,
    name     text    NOT NULL,
    title    text    NOT NULL,
    email    text    NOT NULL,
    phone    text    NOT NULL,
    PRIMARY KEY (lead_id, position)
);

CREATE TABLE lead_checkpoint (
    lead_id  uuid        NOT NULL REFERENCES lead (id) ON DELETE CASCADE,
    kind     integer     NOT NULL,
    due_at   timestamptz NOT NULL,
    status   text        NOT NULL,
    done_at  timestamptz,
    outcome  integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (lead_id, kind)
);

CREATE INDEX lead_checkpoint_upcoming ON lead_checkpoint (due_at) WHERE status = 'UPCOMING';
CREATE INDEX lead_checkpoint_due ON lead_checkpoint (due_at, lead_id) WHERE status = 'DUE';
