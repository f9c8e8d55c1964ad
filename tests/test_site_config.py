"""The website's configuration: local assets only, and workflows that run what `.ci/run` runs."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _yaml(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))


def _run_steps(workflow: dict) -> list[str]:
    return [step["run"].strip() for job in workflow["jobs"].values()
            for step in job.get("steps", []) if "run" in step]


def test_mathjax_is_local_and_pinned_to_version_3():
    config = _yaml("_config.yml")
    assert not config["sphinx"]["config"]["mathjax_path"].startswith("http")
    assert config["sphinx"]["local_extensions"] == {"toymodel_site": "book/_ext"}
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert package["dependencies"]["mathjax"].startswith("3.")
    assert lock["packages"]["node_modules/mathjax"]["version"] == package["dependencies"]["mathjax"]


def test_no_fetched_asset_is_committed():
    assert not (ROOT / "book" / "_static").exists(), "book/_static makes Jupyter Book add every js"
    assets = {p.name for p in (ROOT / "book" / "assets").iterdir()}
    assert not any("mathjax" in a or "plotly" in a for a in assets), assets
    assert "node_modules/" in (ROOT / ".gitignore").read_text().split()


def test_favicon_and_logo_are_the_projects_own():
    config = _yaml("_config.yml")
    for path in (config["logo"], config["html"]["favicon"]):
        data = (ROOT / path).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", path


def test_pull_requests_run_the_ci_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    workflow = _yaml(".github/workflows/tests.yml")
    triggers = workflow.get(True, workflow.get("on"))  # YAML 1.1 reads `on` as True
    assert "pull_request" in triggers
    assert "bash .ci/run" in _run_steps(workflow)


def test_pages_workflow_builds_with_the_readme_command_and_deploys():
    workflow = _yaml(".github/workflows/pages.yml")
    triggers = workflow.get(True, workflow.get("on"))
    assert triggers["push"]["branches"] == ["main"]
    assert "make book" in _run_steps(workflow)
    uses = [step.get("uses", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert any(u.startswith("actions/upload-pages-artifact") for u in uses)
    assert any(u.startswith("actions/deploy-pages") for u in uses)
    upload = next(step for job in workflow["jobs"].values() for step in job["steps"]
                  if step.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"
