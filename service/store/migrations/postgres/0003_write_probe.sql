-- One row that readiness rewrites: a store that answers reads but cannot commit a write (a full
-- disk, a read-only transaction default, a standby) is not ready, and only a real commit finds
-- that out.

CREATE TABLE write_probe (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    probes BIGINT  NOT NULL
);
INSERT INTO write_probe (id, probes) VALUES (1, 0);
