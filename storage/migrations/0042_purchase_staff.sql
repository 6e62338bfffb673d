-- Who served a purchase and at which journey stage (issue 21): reports of CSAT per stage
-- and per staff member.
ALTER TABLE purchases ADD COLUMN staff TEXT;
ALTER TABLE purchases ADD COLUMN stage TEXT;
