-- The event log doubles as the transactional outbox: every state change
-- appends its events in the same transaction. Ids are drawn while holding a
-- transaction-level advisory lock (see events.rs), so they become visible in
-- id order and a reader's cursor can never pass an event that commits late.
CREATE TABLE event_log (
    id             bigint      PRIMARY KEY,
    event_type     text        NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    payload_type   text        NOT NULL,
    payload        bytea       NOT NULL,
    traceparent    text        NOT NULL DEFAULT '',
    tracestate     text        NOT NULL DEFAULT ''
);

CREATE SEQUENCE event_log_id_seq AS bigint OWNED BY event_log.id;

CREATE INDEX event_log_by_aggregate ON event_log (aggregate_type, aggregate_id, id);
CREATE INDEX event_log_by_type ON event_log (event_type, id);
CREATE INDEX event_log_by_time ON event_log (occurred_at);

-- Highest id removed by retention pruning: a cursor below it has missed
-- events and must be told so.
CREATE TABLE event_log_horizon (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    pruned_through bigint  NOT NULL DEFAULT 0
);
INSERT INTO event_log_horizon DEFAULT VALUES;
