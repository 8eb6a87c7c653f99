"""Storage: the domain's stores (domain/stores.py) on SQLAlchemy tables and
queries, one transaction per write. The database's constraints decide
uniqueness."""
