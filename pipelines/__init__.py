"""The HiPO DAG (``hipo_pipeline``) and what compiles it for a cluster (``pipelines.compile``)."""
