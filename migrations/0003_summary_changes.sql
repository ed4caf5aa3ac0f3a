-- tapesched scheduler queues, schema version 3: change tracking of queue summaries.
--
-- A mount decision reads every queue summary (one row per queue: thousands). Readers keep the
-- summaries in memory and, at each decision, read only what changed since their last read:
--
--   * every inserted or updated summary row records the transaction that wrote it (`writer`);
--   * every deleted summary row leaves a tombstone with the deleting transaction;
--   * a reader remembers the `xmin` of the snapshot it last read with (every transaction below it
--     had finished, so its effects were seen) and next reads the rows and tombstones written by
--     transactions at or above it. Re-reading a row already seen is harmless; none is missed,
--     whatever order concurrent transactions commit in.
--
-- Tombstones are pruned by the collector; `queue_summary_pruned.upto` tells a reader whose last
-- snapshot is older than the pruned ones to read everything again.

ALTER TABLE queue_summary ADD COLUMN writer xid8 NOT NULL DEFAULT pg_current_xact_id();

CREATE TABLE queue_summary_gone (
    kind      smallint NOT NULL,
    container text COLLATE "C" NOT NULL,
    writer    xid8 NOT NULL
);
CREATE INDEX queue_summary_gone_writer ON queue_summary_gone (writer);

CREATE TABLE queue_summary_pruned (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    upto xid8 NOT NULL
);
INSERT INTO queue_summary_pruned (upto) VALUES ('0');

CREATE FUNCTION queue_summary_written() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.writer := pg_current_xact_id();
    RETURN NEW;
END
$$;

CREATE FUNCTION queue_summary_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_summary_gone (kind, container, writer) VALUES (OLD.kind, OLD.container, pg_current_xact_id());
    RETURN OLD;
END
$$;

CREATE TRIGGER queue_summary_written BEFORE INSERT OR UPDATE ON queue_summary
    FOR EACH ROW EXECUTE FUNCTION queue_summary_written();
CREATE TRIGGER queue_summary_deleted AFTER DELETE ON queue_summary
    FOR EACH ROW EXECUTE FUNCTION queue_summary_deleted();
