-- PostgreSQL twin of ../0042_purchase_staff.sql.
-- Who served a purchase and at which journey stage (issue 21): reports of CSAT per stage
-- and per staff member.
ALTER TABLE purchases ADD COLUMN staff TEXT COLLATE "C";
ALTER TABLE purchases ADD COLUMN stage TEXT COLLATE "C";
