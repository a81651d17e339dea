"""The KFP client side: submit, schedule, list and unschedule runs of the compiled pipeline on a
Kubeflow Pipelines endpoint (``hipo submit``, ``schedule``, ``runs``, ``unschedule``)."""
