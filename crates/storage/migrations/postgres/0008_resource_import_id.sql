-- The processing request (ZIP import) that created a resource; NULL for one added otherwise. A
-- retried import counts the URLs that an earlier attempt of the same request inserted as created,
-- not as duplicates. No foreign key and no index: it is read only together with
-- (user_id, full_url), whose unique index finds the rows, and an import should not pay for more.
ALTER TABLE resources ADD COLUMN import_id TEXT;
