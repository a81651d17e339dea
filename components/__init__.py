"""KFP components, one module per DAG step. Each is a thin lightweight component on the project's step
image: it imports ``hipo`` inside its body and calls one function of :mod:`hipo.pipeline.steps`."""

from components.compare_arms import compare_arms
from components.evaluate import evaluate
from components.generate_hybrid_data import generate_hybrid_data
from components.hipo_rl import hipo_rl
from components.prepare import prepare
from components.register import gate, promote, register
from components.run_summary import run_summary
from components.sft import sft
from components.stage_base_model import stage_base_model
from components.validate_data import validate_data

__all__ = [
    "compare_arms",
    "evaluate",
    "gate",
    "generate_hybrid_data",
    "hipo_rl",
    "prepare",
    "promote",
    "register",
    "run_summary",
    "sft",
    "stage_base_model",
    "validate_data",
]
