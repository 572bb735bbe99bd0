"""Infrastructure every service shares: settings, pool, migrations, inbox/outbox, consumers."""
