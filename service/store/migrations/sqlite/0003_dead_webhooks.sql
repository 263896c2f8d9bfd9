-- Dead is per (webhook id, token), not per lane: Discord refuses a token, not a channel, and a
-- made-up token for a known webhook id must not orphan the results of whoever holds the real
-- one. Tokens are compared by their hex SHA-256 (``relay_sha256``, a Python function every
-- connection of the store registers), so the dead list never holds a token.
--
-- Results also say which part is on its way to Discord (``in_flight_*``), set just before it is
-- sent and cleared by whatever records its outcome: after a crash it may have arrived.

ALTER TABLE results ADD COLUMN webhook_token_hash TEXT;
ALTER TABLE results ADD COLUMN in_flight_part INTEGER;
ALTER TABLE results ADD COLUMN in_flight_route TEXT;
ALTER TABLE results ADD COLUMN in_flight_at REAL;
UPDATE results SET webhook_token_hash = relay_sha256(webhook_token) WHERE webhook_token IS NOT NULL;
-- kill_webhook orphans the pending results of one (webhook id, token hash).
CREATE INDEX results_webhook_pending ON results (webhook_id, webhook_token_hash)
    WHERE status = 'pending';

CREATE TABLE dead_webhooks (
    webhook_id TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    reason     TEXT NOT NULL,
    dead_at    REAL NOT NULL,
    PRIMARY KEY (webhook_id, token_hash)
);

-- A dead lane was killed by the token its results carried: the tokens of the results it
-- orphaned (those whose orphan reason is the lane's) are the dead ones. Two dead threads of one
-- webhook may name one token twice: the later verdict wins (SQLite takes the bare column
-- ``reason`` from the row holding the MAX).
INSERT INTO dead_webhooks (webhook_id, token_hash, reason, dead_at)
SELECT r.webhook_id, r.webhook_token_hash, l.dead_reason, MAX(COALESCE(l.dead_at, 0))
FROM lanes l JOIN results r ON r.lane = l.lane AND r.orphan_reason = l.dead_reason
WHERE l.dead_reason IS NOT NULL AND r.webhook_token_hash IS NOT NULL
GROUP BY r.webhook_id, r.webhook_token_hash;

ALTER TABLE lanes DROP COLUMN dead_reason;
ALTER TABLE lanes DROP COLUMN dead_at;

-- Attempt outcomes are named for the decision taken (service/delivery/decide.py), no longer for
-- the raw answer: a transient failure was retried, a permanent one refused, and a dead answer
-- on the interaction route was a fallback to the webhook.
UPDATE attempts SET outcome = CASE
    WHEN outcome = 'transient' THEN 'retry'
    WHEN outcome = 'permanent' THEN 'refused'
    WHEN outcome = 'dead_webhook' AND route = 'interaction' THEN 'fallback'
    ELSE outcome
END
WHERE outcome IN ('transient', 'permanent', 'dead_webhook');
