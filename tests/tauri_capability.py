"""Checks a Tauri capability against the permissions the plugins really define.

Tauri's config.schema.json types a permission identifier as any string and scope entries
as untyped values, so a schema check passes "shel:allow-spwan" and misspelled scope keys.
This check uses the identifiers and scope keys vendored in tauri/permissions.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KNOWN = json.loads((Path(__file__).resolve().parent.parent / "tauri" / "permissions.json").read_text())


def _check_arg(arg: Any, where: str) -> list[str]:
    if isinstance(arg, str):
        return []
    if isinstance(arg, dict):
        errors = [f"{where}: unknown arg key {key!r}" for key in arg if key not in KNOWN["scope_entry"]["arg_keys"]]
        if not isinstance(arg.get("validator"), str):
            errors.append(f"{where}: an arg object needs a string 'validator'")
        if "raw" in arg and not isinstance(arg["raw"], bool):
            errors.append(f"{where}: 'raw' must be true or false")
        return errors
    return [f'{where}: an arg is a string or {{"validator": ...}}']


def _check_entry(entry: Any, where: str) -> list[str]:
    if not isinstance(entry, dict):
        return [f"{where}: a scope entry is an object"]
    spec = KNOWN["scope_entry"]
    errors = [f"{where}: unknown scope key {key!r}" for key in entry if key not in spec["keys"]]
    errors += [f"{where}: missing {key!r}" for key in spec["required"] if key not in entry]
    if "sidecar" in entry and not isinstance(entry["sidecar"], bool):
        errors.append(f"{where}: 'sidecar' must be true or false")
    if not entry.get("sidecar") and not isinstance(entry.get("cmd"), str):
        errors.append(f"{where}: needs 'cmd' unless 'sidecar' is true")
    args = entry.get("args", False)
    if isinstance(args, list):
        for n, arg in enumerate(args):
            errors += _check_arg(arg, f"{where}.args[{n}]")
    elif not isinstance(args, bool):
        errors.append(f"{where}: 'args' is true, false or a list")
    return errors


def check_capability(capability: dict) -> list[str]:
    """Every problem found (empty when the capability is sound)."""
    errors = []
    for n, permission in enumerate(capability.get("permissions", [])):
        where = f"permissions[{n}]"
        if isinstance(permission, str):
            identifier = permission
        elif isinstance(permission, dict):
            identifier = permission.get("identifier")
            errors += [
                f"{where}: unknown key {key!r}" for key in permission if key not in ("identifier", "allow", "deny")
            ]
            if ("allow" in permission or "deny" in permission) and identifier not in KNOWN["scoped"]:
                errors.append(f"{where}: {identifier!r} takes no scope")
            for kind in ("allow", "deny"):
                for m, entry in enumerate(permission.get(kind, [])):
                    errors += _check_entry(entry, f"{where}.{kind}[{m}]")
        else:
            errors.append(f"{where}: a permission is a string or an object")
            continue
        if identifier not in KNOWN["permissions"]:
            errors.append(f"{where}: unknown permission {identifier!r}")
    return errors
