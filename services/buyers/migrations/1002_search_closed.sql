-- A buyer search closes when its need is cancelled at intake.
ALTER TABLE buyer_search ADD COLUMN closed_at timestamptz;
