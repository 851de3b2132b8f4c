-- Who made each change: the verified caller of the request behind the
-- event, or the service itself for background work. Handles only, never
-- personal data.
ALTER TABLE event_log
    ADD COLUMN actor_subject text NOT NULL DEFAULT '',
    ADD COLUMN actor_role    text NOT NULL DEFAULT '',
    ADD COLUMN actor_tenant  text NOT NULL DEFAULT '';

-- Every read that returned personal data (contacts): who, through which
-- RPC, of which records. Listed by admins (onestop.audit.v1.AuditService).
CREATE TABLE audit_record (
    id            bigserial   PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    actor_subject text        NOT NULL,
    actor_role    text        NOT NULL,
    actor_tenant  text        NOT NULL,
    method        text        NOT NULL,
    resource_type text        NOT NULL,
    resource_ids  text[]      NOT NULL,
    data          text        NOT NULL,
    traceparent   text        NOT NULL DEFAULT ''
);

CREATE INDEX audit_record_by_resource ON audit_record USING gin (resource_ids);

-- Where this service stands on each feed it follows (another service's):
-- the last event applied and the feed's epoch it was read in, moved in the
-- same transaction as what the event changed (see follow.rs).
CREATE TABLE followed_feed (
    source        text   PRIMARY KEY,
    last_event_id bigint NOT NULL,
    epoch         text   NOT NULL DEFAULT ''
);

-- Owner services: whether a partner works with a company now, as intake's
-- company.partner_changed last said (see company_feed.rs). Intake keeps
-- the relationships themselves.
CREATE TABLE known_partner (
    company_id text        NOT NULL,
    role       text        NOT NULL,
    tenant     text        NOT NULL,
    active     boolean     NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, role, tenant)
);

CREATE INDEX known_partner_by_partner ON known_partner (role, tenant, company_id) WHERE active;
