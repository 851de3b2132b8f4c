-- First results of mutating calls, by caller scope, method and key, so a
-- retry returns what the first call returned.
CREATE TABLE idempotency_key (
    scope        text        NOT NULL,
    method       text        NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    response     bytea,
    -- The aggregate the call created or changed, so erasing a company's
    -- personal data can remove stored responses that repeat it.
    resource_id  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, method, key)
);

CREATE INDEX idempotency_key_by_resource ON idempotency_key (resource_id);
CREATE INDEX idempotency_key_by_age ON idempotency_key (created_at);
