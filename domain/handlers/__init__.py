"""Command handlers, one per command, registered on the IncidentLedger."""
