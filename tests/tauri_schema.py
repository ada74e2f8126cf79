"""Tauri's own config.schema.json, from the npm package @tauri-apps/cli (v2), fetched once."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile

import pytest

from tests.gateway import ROOT

CACHE = ROOT / ".cache" / "tauri-cli"


def load_tauri_schema() -> dict:
    schema = CACHE / "package" / "config.schema.json"
    if not schema.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is needed to fetch @tauri-apps/cli's schema")
        CACHE.mkdir(parents=True, exist_ok=True)
        out = (
            subprocess.run(
                [npm, "pack", "@tauri-apps/cli@2", "--silent"],
                cwd=CACHE,
                capture_output=True,
                text=True,
                timeout=300,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        with tarfile.open(CACHE / out) as archive:
            archive.extract("package/config.schema.json", CACHE, filter="data")
    return json.loads(schema.read_text())


def schema_errors(document: dict, schema: dict, definition: str | None = None) -> list[str]:
    from jsonschema import Draft7Validator

    if definition is not None:
        schema = {"$ref": f"#/definitions/{definition}", "definitions": schema["definitions"]}
    return [e.message for e in sorted(Draft7Validator(schema).iter_errors(document), key=str)]
