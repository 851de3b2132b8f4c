-- Companies' requests to agencies left unanswered past their due date, as
-- intake's feed reports them, kept while the company has an advisor: the
-- advisor's overdue list shows them until the agency answers or the
-- request is escalated (with a new due date).
CREATE TABLE overdue_request (
    request_id          uuid        PRIMARY KEY,
    case_id             uuid        NOT NULL,
    company_id          uuid        NOT NULL,
    answering_agency_id text        NOT NULL,
    kind                text        NOT NULL,
    escalation_level    integer     NOT NULL,
    due_at              timestamptz NOT NULL
);

CREATE INDEX overdue_request_by_company ON overdue_request (company_id, due_at);
