-- tapesched schema version 11: named leases (SchedulerDb::try_lease / release_lease).
--
-- The maintenance daemon (tapesched maintenance) takes one lease per loop so that several
-- instances never run the same pass at once. A lease is granted to its holder when free (no
-- row), expired (until <= the caller's now) or already held by that holder (renewed), in one
-- INSERT ... ON CONFLICT DO UPDATE ... WHERE statement; releasing deletes the holder's row.
-- Times are the caller's clock (epoch seconds), as every other "now".

CREATE TABLE lease (
    name   text   PRIMARY KEY,
    holder text   NOT NULL,
    until  bigint NOT NULL
);
