-- Dead is per (webhook id, token), not per lane: Discord refuses a token, not a channel, and a
-- made-up token for a known webhook id must not orphan the results of whoever holds the real
-- one. Tokens are compared by their hex SHA-256, so the dead list never holds a token.
--
-- Results also say which part is on its way to Discord (``in_flight_*``), set just before it is
-- sent and cleared by whatever records its outcome: after a crash it may have arrived.

ALTER TABLE results
    ADD COLUMN webhook_token_hash TEXT,
    ADD COLUMN in_flight_part     INTEGER,
    ADD COLUMN in_flight_route    TEXT,
    ADD COLUMN in_flight_at       DOUBLE PRECISION;
UPDATE results SET webhook_token_hash = encode(sha256(convert_to(webhook_token, 'UTF8')), 'hex')
WHERE webhook_token IS NOT NULL;
-- kill_webhook orphans the pending results of one (webhook id, token hash).
CREATE INDEX results_webhook_pending ON results (webhook_id, webhook_token_hash)
    WHERE status = 'pending';

CREATE TABLE dead_webhooks (
    webhook_id TEXT             NOT NULL,
    token_hash TEXT             NOT NULL,
    reason     TEXT             NOT NULL,
    dead_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (webhook_id, token_hash)
);

-- A dead lane was killed by the token its results carried: the tokens of the results it
-- orphaned (those whose orphan reason is the lane's) are the dead ones. Two dead threads of one
-- webhook may name one token twice: the later verdict wins.
INSERT INTO dead_webhooks (webhook_id, token_hash, reason, dead_at)
SELECT DISTINCT ON (r.webhook_id, r.webhook_token_hash)
       r.webhook_id, r.webhook_token_hash, l.dead_reason, COALESCE(l.dead_at, 0)
FROM lanes l JOIN results r ON r.lane = l.lane AND r.orphan_reason = l.dead_reason
WHERE l.dead_reason IS NOT NULL AND r.webhook_token_hash IS NOT NULL
ORDER BY r.webhook_id, r.webhook_token_hash, COALESCE(l.dead_at, 0) DESC;

DROP FUNCTION relay_enter_lane(TEXT);
ALTER TABLE lanes DROP COLUMN dead_reason, DROP COLUMN dead_at;

-- Enter a webhook on behalf of a result about to be queued for it (accept, redeliver): make sure
-- its lane has a row (claims lock lane rows), and return why the webhook is dead for this token,
-- or NULL. A result with no webhook (an interaction only) has nothing to be dead.
--
-- The shared lock (against kill_webhook's exclusive one, both on the webhook id's key) closes a
-- race: without it a result could be queued for a webhook that kill_webhook is killing, unseen
-- by both, and stay pending forever. The function is VOLATILE, so in READ COMMITTED each
-- statement in it takes a fresh snapshot: the dead_webhooks read below comes after the lock,
-- even when it had to wait for a kill to commit. Shared locks do not block each other, so
-- accepts run side by side. The key is the webhook id alone: a kill of one token holds back the
-- accepts of the other tokens of that webhook for as long as it takes to commit, no longer.
CREATE FUNCTION relay_enter_webhook(target_lane TEXT, target_webhook TEXT, target_hash TEXT)
RETURNS TEXT
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    dead TEXT;
BEGIN
    IF target_webhook IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock_shared(1381125209, hashtext(target_webhook));
    END IF;
    INSERT INTO lanes (lane) VALUES (target_lane) ON CONFLICT (lane) DO NOTHING;
    SELECT dead_webhooks.reason INTO dead FROM dead_webhooks
    WHERE dead_webhooks.webhook_id = target_webhook AND dead_webhooks.token_hash = target_hash;
    RETURN dead;
END
$$;

-- Whether replica ``who`` heartbeats: it is alive past ``at``. For CLAIM_LANE's re-check of a
-- lane row that another replica leased since the claim's snapshot: VOLATILE, so the read below
-- takes a fresh snapshot and sees that replica's heartbeat, committed before its claim, even
-- when the claim's own snapshot is older than both.
CREATE FUNCTION relay_replica_alive(who TEXT, at_time DOUBLE PRECISION) RETURNS BOOLEAN
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    alive BOOLEAN;
BEGIN
    SELECT EXISTS (
        SELECT 1 FROM replicas WHERE replicas.owner = who AND replicas.alive_until > at_time
    ) INTO alive;
    RETURN alive;
END
$$;

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
