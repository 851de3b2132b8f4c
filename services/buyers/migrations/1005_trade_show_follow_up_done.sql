-- When every lead imported for a trade-show follow-up need had left OPEN
-- (converted, or through all its checkpoints). Set once, in the
-- transaction that moved the need's last lead, so its finishing event is
-- raised once whichever replica or retry gets there.
ALTER TABLE buyer_search ADD COLUMN follow_up_completed_at timestamptz;

-- A need's leads are found through the shows imported for it.
CREATE INDEX trade_show_by_need ON trade_show (need_id) WHERE need_id <> '';
