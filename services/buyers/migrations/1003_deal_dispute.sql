-- Deals the company disputes instead of confirming, and how often an
-- unconfirmed deal was chased for the company's confirmation.
ALTER TABLE deal
    ADD COLUMN disputed_at         timestamptz,
    ADD COLUMN dispute_reason      text    NOT NULL DEFAULT '',
    ADD COLUMN dispute_note        text    NOT NULL DEFAULT '',
    ADD COLUMN confirmation_chases integer NOT NULL DEFAULT 0;

-- The chase sweeps deals neither confirmed nor disputed.
CREATE INDEX deal_awaiting_confirmation ON deal (recorded_at, id)
    WHERE confirmed_at IS NULL AND disputed_at IS NULL;
