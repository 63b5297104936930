"""The pure domain of incident-ledger: commands, aggregates, their events and rules."""
