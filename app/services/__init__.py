"""Business orchestration over the database, with no Flask imports."""
