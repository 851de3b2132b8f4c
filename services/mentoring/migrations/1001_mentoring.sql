CREATE TABLE advisor (
    id               uuid        PRIMARY KEY,
    kind             text        NOT NULL,
    -- Personal data: read back to admins and the advisor only.
    contact_name     text        NOT NULL,
    contact_email    text        NOT NULL,
    contact_phone    text        NOT NULL,
    languages        text[]      NOT NULL,
    industries_ksic  text[]      NOT NULL,
    hs_chapters      text[]      NOT NULL,
    markets          text[]      NOT NULL,
    region           text        NOT NULL,
    capacity         integer     NOT NULL CHECK (capacity >= 1),
    remote           boolean     NOT NULL,
    program_id       text        NOT NULL,
    program_agency   text        NOT NULL,
    program_name     text        NOT NULL,
    fee_currency     text,
    fee_minor        bigint      CHECK (fee_minor >= 0),
    status           text        NOT NULL,
    -- Kept by the same statements that move assignments in and out of
    -- ACTIVE; the conditional increment is what keeps load within capacity.
    active_companies integer     NOT NULL DEFAULT 0 CHECK (active_companies >= 0),
    registered_at    timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    deactivated_at   timestamptz
);

CREATE INDEX advisor_matchable ON advisor (status, id) WHERE status = 'ACTIVE';

-- The latest snapshot of each company mentoring serves: what successors
-- are matched on and what the cadence follows.
CREATE TABLE company (
    id               uuid        PRIMARY KEY,
    region           text        NOT NULL,
    industry_ksic    text        NOT NULL,
    hs_chapters      text[]      NOT NULL,
    target_markets   text[]      NOT NULL,
    languages_needed text[]      NOT NULL,
    stage            text        NOT NULL,
    small_merchant   boolean     NOT NULL,
    updated_at       timestamptz NOT NULL
);

-- One row per hand-off: the need id is intake's idempotency key.
CREATE TABLE need_request (
    need_id     uuid        PRIMARY KEY,
    case_id     uuid        NOT NULL,
    company_id  uuid        NOT NULL REFERENCES company (id),
    category    text        NOT NULL,
    detail      text        NOT NULL,
    received_at timestamptz NOT NULL
);

CREATE INDEX need_request_by_company ON need_request (company_id, received_at);

CREATE TABLE assignment (
    id                        uuid        PRIMARY KEY,
    company_id                uuid        NOT NULL REFERENCES company (id),
    advisor_id                uuid        NOT NULL REFERENCES advisor (id),
    status                    text        NOT NULL,
    stage                     text        NOT NULL,
    -- Encoded onestop.mentoring.v1.AdvisorScore: the explanation as given.
    score                     bytea       NOT NULL,
    score_total               double precision NOT NULL,
    started_at                timestamptz NOT NULL,
    committed_until           timestamptz NOT NULL,
    handover_until            timestamptz,
    ended_at                  timestamptz,
    end_reason                text,
    end_note                  text        NOT NULL DEFAULT '',
    predecessor_assignment_id uuid        REFERENCES assignment (id),
    successor_assignment_id   uuid        REFERENCES assignment (id),
    contact_interval_days     integer     NOT NULL CHECK (contact_interval_days >= 1),
    last_contact_at           timestamptz,
    -- Cadence periods already announced with contact.overdue since the
    -- last contact; reset by every logged session.
    overdue_periods_raised    integer     NOT NULL DEFAULT 0,
    program_id                text        NOT NULL,
    fee_currency              text,
    fee_minor                 bigint,
    from_waitlist             boolean     NOT NULL,
    CHECK (committed_until >= started_at + interval '3 years')
);

-- A company has at most one current advisor.
CREATE UNIQUE INDEX assignment_one_active_per_company ON assignment (company_id) WHERE status = 'ACTIVE';
CREATE INDEX assignment_by_advisor ON assignment (advisor_id, status);
CREATE INDEX assignment_by_company ON assignment (company_id, started_at);
CREATE INDEX assignment_live ON assignment (status) WHERE status IN ('ACTIVE', 'HANDOVER');

CREATE TABLE assignment_need (
    assignment_id uuid NOT NULL REFERENCES assignment (id),
    need_id       uuid NOT NULL REFERENCES need_request (need_id),
    case_id       uuid NOT NULL,
    PRIMARY KEY (assignment_id, need_id)
);

CREATE TABLE waitlist_entry (
    id                     uuid        PRIMARY KEY,
    need_id                uuid        UNIQUE REFERENCES need_request (need_id),
    case_id                uuid,
    company_id             uuid        NOT NULL REFERENCES company (id),
    status                 text        NOT NULL,
    -- 0 for handover successors, 1 for new requests: successors go first.
    priority               integer     NOT NULL,
    outgoing_assignment_id uuid        REFERENCES assignment (id),
    requested_at           timestamptz NOT NULL,
    assignment_id          uuid        REFERENCES assignment (id),
    filled_at              timestamptz
);

CREATE UNIQUE INDEX waitlist_one_waiting_per_company ON waitlist_entry (company_id) WHERE status = 'WAITING';
CREATE INDEX waitlist_fill_order ON waitlist_entry (priority, requested_at, id) WHERE status = 'WAITING';

CREATE TABLE advisor_change (
    id                 bigserial   PRIMARY KEY,
    company_id         uuid        NOT NULL REFERENCES company (id),
    from_assignment_id uuid        NOT NULL REFERENCES assignment (id),
    to_assignment_id   uuid        REFERENCES assignment (id),
    from_advisor_id    uuid        NOT NULL,
    to_advisor_id      uuid,
    reason             text        NOT NULL,
    note               text        NOT NULL,
    changed_at         timestamptz NOT NULL,
    handover_until     timestamptz
);

CREATE INDEX advisor_change_by_company ON advisor_change (company_id, id);

CREATE TABLE session (
    id                   uuid        PRIMARY KEY,
    assignment_id        uuid        NOT NULL REFERENCES assignment (id),
    company_id           uuid        NOT NULL,
    advisor_id           uuid        NOT NULL,
    held_at              timestamptz NOT NULL,
    channel              text        NOT NULL,
    minutes              integer     NOT NULL CHECK (minutes BETWEEN 1 AND 1440),
    topics               text[]      NOT NULL,
    -- Encoded repeated onestop.mentoring.v1.ActionItem.
    follow_up_actions    bytea       NOT NULL,
    interpreter_language text        NOT NULL,
    logged_at            timestamptz NOT NULL,
    logged_by            text        NOT NULL
);

CREATE INDEX session_by_assignment ON session (assignment_id, held_at DESC);
CREATE INDEX session_by_company ON session (company_id, held_at DESC);

CREATE TABLE fee_charge (
    id            uuid        PRIMARY KEY,
    assignment_id uuid        NOT NULL REFERENCES assignment (id),
    company_id    uuid        NOT NULL,
    advisor_id    uuid        NOT NULL,
    program_id    text        NOT NULL,
    month         text        NOT NULL,
    currency      text        NOT NULL,
    amount_minor  bigint      NOT NULL,
    charged_at    timestamptz NOT NULL,
    UNIQUE (assignment_id, month)
);

CREATE INDEX fee_charge_by_company ON fee_charge (company_id, month);
CREATE INDEX fee_charge_by_month ON fee_charge (month);
