"""sft.steps_on: the pipeline's Cold-Start (on) SFT step trains that many steps, the mixed one sft.steps."""

import json

from hipo.config import build_config
from hipo.data.pipeline import generate_dataset
from hipo.engines.scripted import ScriptedEngine
from hipo.pipeline import steps
from hipo.tasks import get_task
from hipo.tasks.rationale import TemplateRationaleWriter

MODEL = {"tiny_hidden": 32, "tiny_layers": 1, "tiny_heads": 2}


def last_step(model_dir):
    lines = (model_dir / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["step"]


def test_each_cold_start_trains_its_own_number_of_steps(tmp_path):
    config = build_config(
        {
            "task": {"train_size": 40, "eval_size": 16},
            "model": MODEL,
            "sft": {
                "steps": 3,
                "steps_on": 2,
                "batch_size": 8,
                "eval_every": 1,
                "optim": {"micro_batch_size": 8},
            },
        }
    )
    data = tmp_path / "data"
    generate_dataset(config, get_task("arithmetic"), ScriptedEngine(seed=0), TemplateRationaleWriter(), data)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / steps.CONFIG_FILE).write_text(config.to_yaml())
    for dataset, expected in (("mix", 3), ("on", 2)):
        model = tmp_path / dataset
        returned = steps.sft(str(tmp_path / "config"), str(data), dataset, str(model), "run-1")
        assert returned["step"] == expected and last_step(model) == expected
