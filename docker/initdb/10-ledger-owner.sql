-- Runs once, when the postgres volume is first initialised (as the image's superuser).
-- `ledger` migrates: not a superuser, it owns the `ledger` database (so it can create the schema)
-- and may create roles (so `incident-ledger migrate` can create the login roles the API and the
-- projector connect as). Change the password outside local development.
CREATE ROLE ledger LOGIN CREATEROLE PASSWORD 'ledger';
CREATE DATABASE ledger OWNER ledger;
