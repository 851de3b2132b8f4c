-- Cases that finish: a need cancelled with its reason, when each need
-- became DONE or CANCELLED, and how and when a case closed.
ALTER TABLE need
    ADD COLUMN cancel_reason text NOT NULL DEFAULT '',
    ADD COLUMN finished_at   timestamptz;

ALTER TABLE support_case
    ADD COLUMN closed_at       timestamptz,
    ADD COLUMN close_cause     text NOT NULL DEFAULT '',
    ADD COLUMN outcome_summary text NOT NULL DEFAULT '';
