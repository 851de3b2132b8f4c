-- Each OneStop service owns its own database and applies its own migrations
-- at startup; this only creates the empty databases. The Postgres image runs
-- it once, when the data directory is first initialised.
CREATE DATABASE onestop_intake;
CREATE DATABASE onestop_mentoring;
CREATE DATABASE onestop_buyers;
CREATE DATABASE onestop_referral;
CREATE DATABASE onestop_insights;
