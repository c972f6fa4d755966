-- RabbitMQ backend: the jobs table stays the record of every job and doubles as the outbox.
-- published_at is set when a relay has handed the job to the broker (and cleared when a worker
-- claims it, or when it is retried, released or requeued), so unpublished due jobs are easy to find.
ALTER TABLE jobs ADD COLUMN published_at BIGINT;
CREATE INDEX jobs_unpublished_idx ON jobs (run_at) WHERE status = 'queued' AND published_at IS NULL;
CREATE INDEX jobs_running_lease_idx ON jobs (locked_until) WHERE status = 'running';
-- The database queue's claim walks queued jobs in run_at order (jobs_claim_idx starts with the
-- queue name, so a claim over several queues had to sort the whole backlog).
CREATE INDEX jobs_queued_idx ON jobs (run_at, id) WHERE status = 'queued';
