"""Multi-tenancy: the tenancy file, identities, namespace resolution and per-tenant limits."""
