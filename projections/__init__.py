"""Read models folded from the event store: pure folds plus PostgreSQL views with tracking."""
