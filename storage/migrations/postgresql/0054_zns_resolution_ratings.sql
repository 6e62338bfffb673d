-- PostgreSQL twin of ../0054_zns_resolution_ratings.sql.
-- Issue 17: a resolved complaint's rating goes by its ZNS template where its chat cannot take
-- a message (the Zalo window closed, a customer known only by phone); the rating read back
-- names the ticket it was stored on (once per rating, like a survey's). The digest counts the
-- week's answers by received_at.
ALTER TABLE zns_ratings ADD COLUMN ticket_id BIGINT REFERENCES tickets (id);
CREATE INDEX zns_ratings_received ON zns_ratings (received_at);
