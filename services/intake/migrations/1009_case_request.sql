-- The agencies that may be asked to answer a company's request: the
-- directory's agencies, kept current from referral's agency.upserted.
CREATE TABLE answering_agency (
    agency_id  text        PRIMARY KEY,
    known_since timestamptz NOT NULL DEFAULT now()
);

INSERT INTO answering_agency (agency_id) VALUES
    ('kotra'), ('sbc'), ('export-centers'), ('semas'), ('kintex');

-- A company's request or complaint on one of its cases. summary, answer
-- and escalation_reason are people's words: erased with the company's
-- personal data, never on the feed.
CREATE TABLE case_request (
    id                  uuid        PRIMARY KEY,
    case_id             uuid        NOT NULL REFERENCES support_case (id),
    company_id          uuid        NOT NULL REFERENCES company (id),
    kind                text        NOT NULL,
    raised_by           text        NOT NULL,
    channel             text        NOT NULL,
    answering_agency_id text        NOT NULL REFERENCES answering_agency (agency_id),
    summary             text        NOT NULL,
    state               text        NOT NULL,
    answer              text        NOT NULL DEFAULT '',
    escalation_level    integer     NOT NULL DEFAULT 0,
    escalation_reason   text        NOT NULL DEFAULT '',
    recorded_by         text        NOT NULL,
    raised_at           timestamptz NOT NULL DEFAULT now(),
    due_at              timestamptz NOT NULL,
    escalated_at        timestamptz,
    answered_at         timestamptz,
    -- When request.overdue was raised for the current due_at.
    overdue_at          timestamptz
);

CREATE INDEX case_request_by_agency ON case_request (answering_agency_id, state, due_at, id);
CREATE INDEX case_request_by_company ON case_request (company_id, state, due_at, id);
CREATE INDEX case_request_due ON case_request (due_at)
    WHERE state <> 'ANSWERED' AND overdue_at IS NULL;
