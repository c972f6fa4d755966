-- A message is recorded before it is handed to the relay ('sending') and again once the relay took
-- it ('sent'; sent_at is then when). A retry that finds 'sending' knows an earlier attempt may have
-- delivered it, and sends again with the same Message-ID, which the recipient's mailbox collapses.
-- Rows from before this migration were all sent.
ALTER TABLE mail_log ADD COLUMN state TEXT NOT NULL DEFAULT 'sent';
ALTER TABLE mail_log ADD COLUMN message_id TEXT;
