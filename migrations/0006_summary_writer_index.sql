-- tapesched scheduler queues, schema version 6: the summaries a reader has not seen, by index.
--
-- A mount decision reads the queue summaries written since its process last read them (see
-- version 3). Without an index on `writer` that read scanned every summary row (11 000 of them in
-- the benchmark) to find the hundred that changed, the larger part of a decision's database time.
-- Summary updates now also update this index (they were HOT updates before): one entry per
-- changed queue per transaction.

CREATE INDEX queue_summary_writer ON queue_summary (writer);
