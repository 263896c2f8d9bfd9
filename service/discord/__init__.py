"""Discord-facing pure logic: URL parsing, snowflakes, limits, rendering, sending."""
