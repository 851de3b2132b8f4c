-- The feed's identity: a new database (recreated, or restored into a new
-- one) gets a new epoch, so a consumer holding a cursor of another epoch is
-- told instead of silently skipping or re-reading events.
ALTER TABLE event_log_horizon ADD COLUMN epoch uuid NOT NULL DEFAULT gen_random_uuid();
