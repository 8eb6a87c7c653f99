"""The storage's Prometheus metrics (served by `serve --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CREATE_BATCH_SIZE = Histogram(
    "modelregistry_create_batch_size",
    "Creates the group-commit writer committed in one transaction, per batch",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
DATABASE_ERRORS = Counter(
    "modelregistry_database_errors",
    "Database errors other than a taken id, by the driver's error class",
    ("error",),
)
DATABASE_AVAILABLE = Gauge(
    "modelregistry_database_available",
    "0 from a call the database failed (an outage) until one it answers again, else 1",
)
DATABASE_AVAILABLE.set(1)
DATABASE_OUTAGES = Counter(
    "modelregistry_database_outages", "Outages that began: each is logged when it begins and ends"
)
LIST_READS = Counter(
    "modelregistry_list_reads",
    "ListModels' pages and tag lists, by where they ran: on the event loop's thread"
    " or on a database thread (storage/loop_first.py)",
    ("ran_on",),
)
LIST_READS_STOPPED = Counter(
    "modelregistry_list_reads_stopped",
    "ListModels' reads stopped on the event loop over their budget, then run on a thread",
)
GET_READS = Counter(
    "modelregistry_get_reads",
    "GetModel's reads, by where they ran: on the event loop's thread or on a"
    " database thread (SQLite; on PostgreSQL they are batched on a thread of their own)",
    ("ran_on",),
)
GET_READS_STOPPED = Counter(
    "modelregistry_get_reads_stopped",
    "GetModel's reads stopped on the event loop over their budget, then run on a thread",
)
GET_READS_AGAIN = Counter(
    "modelregistry_get_reads_again",
    "GetModel's reads asked again by the same caller at the database version they"
    " were read at, answered from what was read then (SQLite)",
)
LIST_PAGES_KEPT = Counter(
    "modelregistry_list_pages_kept",
    "ListModels' pages answered from a reader's matches kept at the database's"
    " current version (storage/kept_reads.py)",
)
LIST_PAGES_AGAIN = Counter(
    "modelregistry_list_pages_again",
    "ListModels' pages asked again by the same caller at the database version they"
    " were read at, answered with the page read then (storage/list_reads.py)",
)
LIST_TOTALS_KEPT = Counter(
    "modelregistry_list_totals_kept",
    "ListModels' pages whose total (counted apart from the page: an admin's)"
    " was kept at the database's current version, not counted again",
)
