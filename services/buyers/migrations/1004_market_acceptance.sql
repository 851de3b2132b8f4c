-- The need category a buyer search was opened for ('' for searches opened
-- before it was kept), and, for a market-diversification need, the market
-- the company took up from the recommendations: the need's definition of
-- done.
ALTER TABLE buyer_search ADD COLUMN category text NOT NULL DEFAULT '';
ALTER TABLE buyer_search ADD COLUMN accepted_market text;
ALTER TABLE buyer_search ADD COLUMN accepted_at timestamptz;
