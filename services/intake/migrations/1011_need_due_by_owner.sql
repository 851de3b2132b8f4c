-- Each owner's relay claims its own next due need. Indexed by time alone,
-- a claim walked every owner's pending needs (and the dead entries each
-- lease leaves behind) before reaching one of its own; by owner first, it
-- starts at its own earliest.
CREATE INDEX need_due_by_owner ON need (owner, next_delivery_at) WHERE delivery = 'PENDING';
DROP INDEX need_due_for_delivery;
