-- Runs once, when the postgres volume is first initialised (as the image's superuser).
-- The service connects as `ledger`: not a superuser, it owns the `ledger` database (so it can
-- create the schema) and may create roles (so `incident-ledger migrate` can create the
-- restricted role the service writes with). Change the password outside local development.
CREATE ROLE ledger LOGIN CREATEROLE PASSWORD 'ledger';
CREATE DATABASE ledger OWNER ledger;
