-- Insights' projections of the four feeds. Each table is fed by one source
-- only, so a feed whose epoch changed (its database was recreated) is
-- rebuilt by deleting that source's rows and reading it again from 0.
-- Figures for a period are aggregated from these rows when asked for.

-- How far each feed has been applied, in the same transaction as what the
-- events changed; the row lock makes replicas apply every event once.
CREATE TABLE feed_cursor (
    source        text        PRIMARY KEY,
    epoch         text        NOT NULL DEFAULT '',
    last_event_id bigint      NOT NULL DEFAULT 0,
    head          bigint      NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- intake -------------------------------------------------------------------

CREATE TABLE company (
    company_id text PRIMARY KEY,
    province   text NOT NULL DEFAULT '',
    stage      text NOT NULL DEFAULT ''
);

-- Province and stage as when the case opened.
CREATE TABLE support_case (
    case_id          text        PRIMARY KEY,
    company_id       text        NOT NULL,
    province         text        NOT NULL DEFAULT '',
    stage            text        NOT NULL DEFAULT '',
    opened_at        timestamptz NOT NULL,
    -- First moment every need was delivered to its owner (or cancelled).
    all_delivered_at timestamptz,
    -- Set while every need is DONE or CANCELLED.
    closed_at        timestamptz
);
CREATE INDEX support_case_opened ON support_case (opened_at);
CREATE INDEX support_case_closed ON support_case (closed_at) WHERE closed_at IS NOT NULL;

CREATE TABLE need (
    need_id      text        PRIMARY KEY,
    case_id      text        NOT NULL,
    -- MENTORING, BUYERS or REFERRAL; '' until need.opened is applied.
    owner        text        NOT NULL DEFAULT '',
    status       text        NOT NULL DEFAULT 'OPEN',
    opened_at    timestamptz,
    delivered_at timestamptz
);
CREATE INDEX need_by_case ON need (case_id);

-- buyers -------------------------------------------------------------------

CREATE TABLE buyer (
    buyer_id        text PRIMARY KEY,
    trade_office_id text NOT NULL,
    country         text NOT NULL
);

-- Every vetting decision, by the event that carried it.
CREATE TABLE vetting_decision (
    event_id        bigint      PRIMARY KEY,
    buyer_id        text        NOT NULL,
    trade_office_id text        NOT NULL,
    status          text        NOT NULL,
    decided_at      timestamptz NOT NULL
);
CREATE INDEX vetting_decision_at ON vetting_decision (decided_at);

CREATE TABLE consultation (
    consultation_id text        PRIMARY KEY,
    company_id      text        NOT NULL,
    buyer_id        text        NOT NULL,
    booked_at       timestamptz NOT NULL
);
CREATE INDEX consultation_booked ON consultation (booked_at);

CREATE TABLE deal (
    deal_id      text        PRIMARY KEY,
    company_id   text        NOT NULL,
    buyer_id     text        NOT NULL,
    currency     text        NOT NULL,
    amount_minor bigint      NOT NULL,
    recorded_at  timestamptz NOT NULL,
    confirmed_at timestamptz
);

-- referral -----------------------------------------------------------------

-- One row per leg: a referral's turn at one program.
CREATE TABLE referral_leg (
    referral_id text        NOT NULL,
    leg_number  integer     NOT NULL,
    agency_id   text        NOT NULL,
    program_id  text        NOT NULL,
    province    text        NOT NULL DEFAULT '',
    status      text        NOT NULL,
    sent_at     timestamptz NOT NULL,
    accepted_at timestamptz,
    PRIMARY KEY (referral_id, leg_number)
);
CREATE INDEX referral_leg_sent ON referral_leg (sent_at);

-- mentoring ----------------------------------------------------------------

CREATE TABLE advisor (
    advisor_id text    PRIMARY KEY,
    kind       text    NOT NULL,
    region     text    NOT NULL,
    capacity   integer NOT NULL,
    active     boolean NOT NULL DEFAULT true
);

CREATE TABLE assignment (
    assignment_id text        PRIMARY KEY,
    advisor_id    text        NOT NULL,
    company_id    text        NOT NULL,
    -- ACTIVE, HANDOVER or ENDED.
    status        text        NOT NULL,
    -- Due date of the contact that is overdue now; cleared by a session.
    overdue_since timestamptz
);
CREATE INDEX assignment_by_advisor ON assignment (advisor_id) WHERE status = 'ACTIVE';

CREATE TABLE waitlist_entry (
    entry_id   text    PRIMARY KEY,
    company_id text    NOT NULL,
    waiting    boolean NOT NULL DEFAULT true
);
CREATE INDEX waitlist_waiting ON waitlist_entry (company_id) WHERE waiting;

CREATE TABLE fee_charge (
    charge_id    text   PRIMARY KEY,
    program_id   text   NOT NULL,
    -- "YYYY-MM" in Asia/Seoul, as charged.
    month        text   NOT NULL,
    currency     text   NOT NULL,
    amount_minor bigint NOT NULL
);
CREATE INDEX fee_charge_month ON fee_charge (month);

-- every feed ---------------------------------------------------------------

-- The newest events for the ticker; older rows are trimmed as new ones come.
CREATE TABLE ticker (
    source      text        NOT NULL,
    event_id    bigint      NOT NULL,
    event_type  text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    -- The agency a referral event concerns, so agency tokens see their own.
    agency_id   text,
    summary     text        NOT NULL,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX ticker_newest ON ticker (occurred_at DESC);
