CREATE TABLE company (
    id                       uuid        PRIMARY KEY,
    registration_number      text        NOT NULL UNIQUE,
    name_ko                  text        NOT NULL,
    name_en                  text        NOT NULL,
    region                   text        NOT NULL,
    industry_ksic            text        NOT NULL,
    hs_codes                 text[]      NOT NULL,
    employees                integer     NOT NULL CHECK (employees >= 0),
    annual_revenue_currency  text        NOT NULL,
    annual_revenue_minor     bigint      NOT NULL CHECK (annual_revenue_minor >= 0),
    export_revenue_currency  text        NOT NULL,
    export_revenue_minor     bigint      NOT NULL CHECK (export_revenue_minor >= 0),
    export_countries         text[]      NOT NULL,
    languages                text[]      NOT NULL,
    small_merchant           boolean     NOT NULL,
    stage                    text        NOT NULL,
    readiness_score          integer     NOT NULL DEFAULT 0,
    assessment_version       integer     NOT NULL DEFAULT 0,
    registered_at            timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    personal_data_erased_at  timestamptz
);

CREATE INDEX company_by_region ON company (region, id);
CREATE INDEX company_by_stage ON company (stage, id);

-- Personal data lives here and nowhere else in intake.
CREATE TABLE company_contact (
    company_id uuid    NOT NULL REFERENCES company (id) ON DELETE CASCADE,
    position   integer NOT NULL,
    name       text    NOT NULL,
    title      text    NOT NULL,
    email      text    NOT NULL,
    phone      text    NOT NULL,
    PRIMARY KEY (company_id, position)
);

-- Every diagnosis is kept; version counts per company from 1.
CREATE TABLE assessment (
    id                uuid        PRIMARY KEY,
    company_id        uuid        NOT NULL REFERENCES company (id),
    version           integer     NOT NULL,
    score             integer     NOT NULL CHECK (score BETWEEN 0 AND 100),
    stage             text        NOT NULL,
    previous_stage    text        NOT NULL,
    answers           bytea       NOT NULL,
    breakdown         jsonb       NOT NULL,
    rationale         text        NOT NULL,
    assessed_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, version)
);

CREATE TABLE support_case (
    id         uuid        PRIMARY KEY,
    company_id uuid        NOT NULL REFERENCES company (id),
    status     text        NOT NULL,
    opened_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX support_case_by_company ON support_case (company_id, id);

CREATE TABLE need (
    id                uuid        PRIMARY KEY,
    case_id           uuid        NOT NULL REFERENCES support_case (id),
    position          integer     NOT NULL,
    category          text        NOT NULL,
    owner             text        NOT NULL,
    detail            text        NOT NULL,
    target_markets    text[]      NOT NULL,
    hs_codes          text[]      NOT NULL,
    status            text        NOT NULL,
    added_by_rule     boolean     NOT NULL,
    delivery          text        NOT NULL,
    delivery_attempts integer     NOT NULL DEFAULT 0,
    opened_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (case_id, position)
);

CREATE TABLE case_timeline (
    id       bigserial   PRIMARY KEY,
    case_id  uuid        NOT NULL REFERENCES support_case (id),
    need_id  uuid,
    at       timestamptz NOT NULL DEFAULT now(),
    service  text        NOT NULL,
    kind     text        NOT NULL,
    summary  text        NOT NULL
);

CREATE INDEX case_timeline_by_case ON case_timeline (case_id, at, id);
