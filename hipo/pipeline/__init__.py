"""The pipeline's face in Python: one function per step on plain paths (what the components call), the
one list of pipeline parameters, the local run through kfp.local with its progress view and run
records, and compiling the DAG for a cluster."""
