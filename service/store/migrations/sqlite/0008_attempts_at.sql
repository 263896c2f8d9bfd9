-- The dashboard's overview counts the attempts of the last hour: found by time, not by walking
-- every result of the tenant.

CREATE INDEX attempts_at ON attempts (at);
