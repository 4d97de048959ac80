"""Gunicorn settings read by the Procfile's web line (`gunicorn -c booking_project/gunicorn.conf.py`)."""


def child_exit(server, worker):
    # prometheus_client multiprocess mode: a dead worker's live gauges must stop counting. Its counters and
    # histograms stay in PROMETHEUS_MULTIPROC_DIR and keep adding up, as Prometheus expects of counters.
    import os

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
