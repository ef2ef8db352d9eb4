-- The links the form mailed in the last day, by mailbox: many spellings reach one inbox
-- (`Ann+1@…`, `a.nn@gmail.com`), so the daily limit counts the mailbox, not the address.
-- Only a hash of the mailbox key is kept, as on the suppression list; rows older than a
-- day are deleted as new ones come.
CREATE TABLE mailbox_mails (
    -- Hex SHA-256 of the mailbox key (lower case, domain in A-labels, no +tag, no dots
    -- at Gmail).
    mailbox_hash TEXT NOT NULL,
    sent_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX mailbox_mails_mailbox ON mailbox_mails (mailbox_hash, sent_at);
CREATE INDEX mailbox_mails_sent ON mailbox_mails (sent_at);

-- From this version on, a new suppression (an erased reader) is filed under the hash
-- of the mailbox key, so that no spelling of the mailbox is mailed from the form again.
-- Hashes filed before (of the address folded to lower case) cannot be turned into mailbox
-- keys; paperboy keeps checking them beside the new ones.
