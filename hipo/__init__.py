"""HiPO Pipelines: train LLMs to decide when to think (Hybrid Policy Optimization)."""

__version__ = "0.1.0"
