"""cluster.yaml must be a valid Ray cluster-launcher config (Ray's own schema and defaults)."""

import json
import os
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


def _schema() -> dict:
    path = os.path.join(os.path.dirname(ray.autoscaler.__file__), "ray-schema.json")
    with open(path) as f:
        return json.load(f)


def test_cluster_yaml_passes_rays_schema():
    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    jsonschema.validate(cfg, _schema())
    validate_config(prepare_config(cfg))
    assert cfg["docker"]["image"].startswith(f"rayproject/ray:{ray.__version__}-")
    assert cfg["docker"]["image"].endswith("-gpu")
    workers = cfg["available_node_types"]["gpu_worker"]
    assert workers["max_workers"] >= 1 and workers["node_config"]["InstanceType"].startswith("g6e")
    assert any("pip install -e" in c for c in cfg["setup_commands"])


def test_schema_rejects_a_misspelt_key():
    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    cfg["available_node_types"]["gpu_worker"]["max_worker"] = 3
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        jsonschema.validate(cfg, _schema())


def test_study_config_asks_for_a_gpu_and_shared_storage():
    from raysweep.config import load_config

    cfg = load_config(ROOT / "configs" / "study.yaml")
    assert cfg.resources.gpu == 1
    assert cfg.ray.storage_path and cfg.ray.storage_path.startswith("s3://")
    assert len(cfg.calibration.sources) == 15
    assert cfg.pruning.sparsities == [0.3, 0.4, 0.5, 0.6, 0.7]
