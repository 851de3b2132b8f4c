-- A request whose need was cancelled at intake is withdrawn: it leaves the
-- waitlist; an advisor already assigned stays with the company.
ALTER TABLE need_request ADD COLUMN withdrawn_at timestamptz;
