-- The fleet's shared state: which replicas are alive (the worker divides the request budget by
-- their number) and a fleet-wide pause after a global 429 or a Cloudflare block.

CREATE TABLE replicas (
    owner       TEXT PRIMARY KEY,
    alive_until REAL NOT NULL
);

CREATE TABLE fleet (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    paused_until REAL    NOT NULL
);
INSERT INTO fleet (id, paused_until) VALUES (1, 0);
