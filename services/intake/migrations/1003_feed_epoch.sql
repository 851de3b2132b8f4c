-- The epoch of the owner's feed the cursor was read in (its FeedStatus.epoch):
-- ids of one epoch mean nothing in another. Empty until the first status is
-- heard.
ALTER TABLE feed_cursor ADD COLUMN epoch text NOT NULL DEFAULT '';

-- The owner's event behind a timeline line (a fingerprint of its content),
-- so that a feed read again from the start after the owner's database was
-- restored or recreated adds no line twice.
ALTER TABLE case_timeline ADD COLUMN source_event text;

CREATE UNIQUE INDEX case_timeline_once_per_owner_event
    ON case_timeline (service, source_event) WHERE source_event IS NOT NULL;
