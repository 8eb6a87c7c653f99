"""Model registry server: gRPC transport -> domain rules -> SQLAlchemy storage."""
