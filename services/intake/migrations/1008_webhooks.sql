-- Partners' webhook endpoints: where intake pushes the events a partner
-- wants, signed with the endpoint's secret.
--
-- The secret is kept as issued: the dispatcher must sign with it, so a
-- one-way hash would not do, and the platform holds no key for
-- encrypting at rest. It is never returned after registration or
-- rotation, never logged and never on the feed.
CREATE TABLE webhook_endpoint (
    webhook_id            uuid PRIMARY KEY,
    partner_role          text NOT NULL CHECK (partner_role IN ('agency', 'advisor', 'trade_office')),
    partner_tenant        text NOT NULL,
    url                   text NOT NULL,
    event_types           text[] NOT NULL,
    secret                text NOT NULL,
    -- A rotated-out secret signs beside the new one until then.
    previous_secret       text,
    previous_secret_until timestamptz,
    state                 text NOT NULL DEFAULT 'ENABLED' CHECK (state IN ('ENABLED', 'DISABLED')),
    disabled_cause        text NOT NULL DEFAULT '' CHECK (disabled_cause IN ('', 'REQUESTED', 'FAILING')),
    failures_in_a_row     integer NOT NULL DEFAULT 0,
    failing_since         timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_endpoint_partner
    ON webhook_endpoint (partner_role, partner_tenant, created_at, webhook_id);

-- Where each endpoint is on each source's feed, in that feed's epoch.
-- Events that occurred before the endpoint was registered are passed
-- over, not delivered. One replica at a time delivers an endpoint's
-- events of one source: the lease says which, until when.
CREATE TABLE webhook_cursor (
    webhook_id    uuid NOT NULL REFERENCES webhook_endpoint ON DELETE CASCADE,
    source        text NOT NULL,
    last_event_id bigint NOT NULL DEFAULT 0,
    epoch         text NOT NULL DEFAULT '',
    leased_by     uuid,
    leased_until  timestamptz,
    PRIMARY KEY (webhook_id, source)
);

-- Every delivery attempt; the dispatcher keeps the latest per endpoint.
CREATE TABLE webhook_delivery (
    delivery_id  bigserial PRIMARY KEY,
    webhook_id   uuid NOT NULL REFERENCES webhook_endpoint ON DELETE CASCADE,
    source       text NOT NULL,
    event_id     bigint NOT NULL,
    event_type   text NOT NULL,
    message_id   text NOT NULL,
    status_code  integer NOT NULL DEFAULT 0,
    error        text NOT NULL DEFAULT '',
    duration_ms  integer NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_delivery_latest ON webhook_delivery (webhook_id, delivery_id DESC);
