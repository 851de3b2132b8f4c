-- Delivery of each need to its owner (the outbox relay's bookkeeping).
ALTER TABLE need
    ADD COLUMN next_delivery_at    timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_delivery_error text        NOT NULL DEFAULT '',
    ADD COLUMN delivered_at        timestamptz,
    -- The owner's record for this need (assignment, buyer search or
    -- referral id), as its acknowledgement returned it.
    ADD COLUMN owner_record_id     text        NOT NULL DEFAULT '';

CREATE INDEX need_due_for_delivery ON need (next_delivery_at) WHERE delivery = 'PENDING';

-- Where intake stands on each owner's event feed, so following resumes
-- after a restart without replaying or skipping.
CREATE TABLE feed_cursor (
    source        text   PRIMARY KEY,
    last_event_id bigint NOT NULL
);
