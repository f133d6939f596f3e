"""Reads the deployment manifests for tests/container.rs (run with tests/peers/.venv/bin/python).

  manifests.py iotedge MANIFEST SCHEMA    validate an IoT Edge deployment manifest; print JSON:
                                          {"errors": [...], "modules": {id: {"createOptions": {...}, "env": {...}}}}
  manifests.py compose-active IN OUT      write the compose file without its profile-only services,
                                          as `docker compose` without --profile starts it
  manifests.py kubernetes DIR             print every document of DIR/*.yaml as a JSON list
"""
import json
import re
import sys
from pathlib import Path

import jsonschema
import yaml

# IoT Edge stores createOptions in the module twin: each chunk is at most 512 characters and a
# module has at most 8 of them (createOptions, createOptions01 ... createOptions07).
CHUNK_MAX = 512
CHUNKS_MAX = 8


def iotedge(manifest_path, schema_path):
    manifest = json.loads(Path(manifest_path).read_text())
    schema = json.loads(Path(schema_path).read_text())
    validator = jsonschema.Draft4Validator(schema)
    errors = [
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(manifest)
    ]
    agent = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]
    modules = {}
    for group in ("systemModules", "modules"):
        for name, module in agent.get(group, {}).items():
            settings = module.get("settings", {})
            keys = sorted(k for k in settings if re.fullmatch(r"createOptions(\d\d)?", k))
            if len(keys) > CHUNKS_MAX:
                errors.append(f"{name}: {len(keys)} createOptions chunks (at most {CHUNKS_MAX})")
            expected = ["createOptions"] + [f"createOptions{i:02}" for i in range(1, len(keys))]
            if keys and keys != expected:
                errors.append(f"{name}: createOptions chunks {keys} are not consecutive")
            for k in keys:
                if len(settings[k]) > CHUNK_MAX:
                    errors.append(f"{name}: {k} has {len(settings[k])} characters (at most {CHUNK_MAX})")
            joined = "".join(settings[k] for k in expected if k in settings)
            try:
                create = json.loads(joined) if joined else {}
            except json.JSONDecodeError as e:
                errors.append(f"{name}: createOptions is not JSON: {e}")
                create = {}
            modules[name] = {
                "image": settings.get("image"),
                "createOptions": create,
                "env": {k: v.get("value") for k, v in module.get("env", {}).items()},
            }
    print(json.dumps({"errors": errors, "modules": modules}))


def compose_active(src, dst):
    doc = yaml.safe_load(Path(src).read_text())
    doc["services"] = {k: v for k, v in doc["services"].items() if not v.get("profiles")}
    Path(dst).write_text(yaml.safe_dump(doc, sort_keys=False))


def kubernetes(directory):
    docs = []
    for path in sorted(Path(directory).glob("*.yaml")):
        for d in yaml.safe_load_all(path.read_text()):
            if d is not None:
                d["__file"] = path.name
                docs.append(d)
    print(json.dumps(docs))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"iotedge": iotedge, "compose-active": compose_active, "kubernetes": kubernetes}[command](*args)
