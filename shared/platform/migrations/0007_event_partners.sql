-- The partners (agency, advisor, overseas trade office) an event belongs
-- to, as "role:tenant", written by the service at append time. A partner's
-- Watch stream carries only the events that name it; internal roles see
-- every event as before. Empty for events no partner may watch.
ALTER TABLE event_log ADD COLUMN partners text[] NOT NULL DEFAULT '{}';

-- A partner catching up from behind the replica's in-memory window reads
-- only its own events.
CREATE INDEX event_log_by_partner ON event_log USING gin (partners);
