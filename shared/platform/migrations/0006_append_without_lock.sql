-- Appends no longer serialise on an advisory lock (see events.rs). Instead
-- an event's id is drawn only once its transaction holds a transaction id,
-- so the feed can ask Postgres which transactions could still commit an id
-- it has not delivered, and wait for exactly those.
ALTER TABLE event_log ADD COLUMN xact xid8;

-- The sequence's last value must be the highest id any session has drawn:
-- a session caching ids ahead could hand one out after the feed counted it
-- as decided.
ALTER SEQUENCE event_log_id_seq CACHE 1;

-- Assigns the id per row: first the transaction id (taking one if the
-- transaction has none yet), then the next id of the sequence. Kept in the
-- database so the order holds however the inserting statement is planned.
CREATE FUNCTION event_log_assign_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.xact := pg_current_xact_id();
    NEW.id := nextval('event_log_id_seq');
    RETURN NEW;
END
$$;

CREATE TRIGGER event_log_assign_id BEFORE INSERT ON event_log
    FOR EACH ROW EXECUTE FUNCTION event_log_assign_id();

-- One wake-up per appending statement, delivered at commit (Postgres folds
-- equal notifications of one transaction into one), with no round trip of
-- its own.
CREATE FUNCTION event_log_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('onestop_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER event_log_notify AFTER INSERT ON event_log
    FOR EACH STATEMENT EXECUTE FUNCTION event_log_notify();

-- Where the feed stands, read in this order: `issued`, the highest id drawn
-- so far; then `running`, the transactions of this database that hold a
-- transaction id now. Any transaction holding an id up to `issued` took its
-- transaction id before drawing it, so it is either over or in `running`.
-- `waited_ended` says whether every transaction of `waiting` (the `running`
-- of an earlier call) is over. Each call runs in its own transaction, so
-- pg_stat_activity is read afresh.
CREATE FUNCTION event_log_fence(
    waiting bigint[],
    OUT issued bigint,
    OUT running bigint[],
    OUT waited_ended boolean
) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
      INTO issued
      FROM event_log_id_seq;
    SELECT coalesce(array_agg(backend_xid::text::bigint), '{}')
      INTO running
      FROM pg_stat_activity
     WHERE datname = current_database()
       AND backend_xid IS NOT NULL;
    waited_ended := NOT (running && waiting);
END
$$;
