-- Opening a case asks whether the company already has an open mentoring
-- need. Indexed by case, the answer costs the company's cases and its few
-- open mentoring needs, not every need it ever had.
CREATE INDEX need_open_mentoring ON need (case_id)
    WHERE category = 'MENTORING' AND status NOT IN ('DONE', 'CANCELLED');
