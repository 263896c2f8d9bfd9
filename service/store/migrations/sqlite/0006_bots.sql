-- The tenants' Discord bots (one per tenant, its token sealed like every other token), and the
-- bot channel a result names (``destination.channel_id``) with whether it may go to a DM.
-- ``source`` says who set the bot: the API (PUT /v1/bot) or RELAY_BOT_TOKENS at start-up.

CREATE TABLE bots (
    tenant      TEXT    PRIMARY KEY,
    bot_id      TEXT    NOT NULL,
    username    TEXT    NOT NULL,
    token       TEXT    NOT NULL,
    dm_fallback INTEGER NOT NULL DEFAULT 0,
    source      TEXT    NOT NULL CHECK (source IN ('api', 'config')),
    created_at  REAL    NOT NULL,
    updated_at  REAL    NOT NULL
);

ALTER TABLE results ADD COLUMN channel_id TEXT;
-- NULL: the tenant's default (its bot's dm_fallback)
ALTER TABLE results ADD COLUMN dm_fallback INTEGER;
