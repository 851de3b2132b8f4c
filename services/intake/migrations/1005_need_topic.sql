-- What a need opened on an owner's finding is about (a certification's
-- name, upper case), so the same finding opens it once per case, matched
-- exactly rather than by words of the need's detail.
ALTER TABLE need ADD COLUMN topic text;

UPDATE need
   SET topic = upper(trim(split_part(detail, ' certification for HS ', 1)))
 WHERE added_by_rule
   AND category = 'CERTIFICATION'
   AND strpos(detail, ' certification for HS ') > 0;
