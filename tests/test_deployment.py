"""docker-compose.yml cannot run here (no Docker engine); check it is consistent with the code."""

import re

import yaml

from qa_service.settings import Settings
from tests.conftest import ROOT


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_api_service_is_consistent_with_settings_and_routes() -> None:
    api = compose()["services"]["api"]
    env = api["environment"]
    fields = {f"QA_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, set(env) - fields
    index_dir = env["QA_INDEX_DIR"]
    assert any(v.split(":")[1] == index_dir for v in api["volumes"])
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert api["ports"] == ["127.0.0.1:8000:8000"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "EXPOSE 8000" in dockerfile and "requirements.lock" in dockerfile
    for var in re.findall(r"\b(QA_[A-Z_]+)=", dockerfile):
        assert var in fields, var


def test_named_volumes_are_declared() -> None:
    data = compose()
    named = {v.split(":")[0] for s in data["services"].values() for v in s.get("volumes", []) if not v.startswith(".")}
    assert named <= set(data["volumes"])
