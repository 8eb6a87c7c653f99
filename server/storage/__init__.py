"""Storage: SQLAlchemy tables and queries, one transaction per write. The
database's constraints decide uniqueness."""
