"""What the operators see: the funnel's counters, the live feed of events and
deliveries, and the reads behind the admin JSON API (`endpoints/ops_api.py`).

The stores record what these read as part of the writes they already make (the
outbox's submit and marks, the journeys' flush); nothing here is on the request path.
"""
