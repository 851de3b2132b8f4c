-- Appending transactions no longer notify: Postgres commits every
-- transaction that sent a notification one at a time, on one lock for the
-- whole server. The appending process announces its appends instead, from
-- a task of its own outside the request's transaction, one notification
-- for a burst of appends (see events.rs).
DROP TRIGGER event_log_notify ON event_log;
DROP FUNCTION event_log_notify();
