"""Storage failures the domain turns into client errors."""


class DuplicateKey(Exception):
    """A row with this primary or unique key exists already."""


class StorageUnavailable(Exception):
    """The database cannot be reached or is not answering in time."""
