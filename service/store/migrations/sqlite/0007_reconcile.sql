-- Bot messages carry a nonce derived from the result and its delivery round: a redeliver posts
-- again on purpose, so it starts a new round (and new nonces).
ALTER TABLE results ADD COLUMN delivery_round INTEGER NOT NULL DEFAULT 0;

-- The channel each webhook posts in, as Discord said it (Get Webhook, or the channel_id of a
-- message the webhook posted): where to look for a part whose send went unanswered. A channel
-- id is no secret, and the webhook's token is not kept here.
CREATE TABLE webhook_channels (
    webhook_id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL,
    learned_at REAL NOT NULL
);
