#!/usr/bin/env python3
"""Validates custom resources against their CustomResourceDefinition's openAPIV3Schema, as
kube-apiserver does for the CRD's served version (kubernetes-validate has no schema for CRDs).

usage: validate-crd.py CRD.yaml OBJECTS.yaml   (every document of OBJECTS.yaml of the CRD's kind)
Exit 1 listing each violation with its path; 0 when every object of the kind is valid; 2 when
OBJECTS.yaml holds none of the kind.
Runs with the tools venv's python (jsonschema, PyYAML).
"""
import sys

import jsonschema
import yaml


def main(crd_path, objects_path):
    with open(crd_path) as f:
        crd = yaml.safe_load(f)
    kind = crd["spec"]["names"]["kind"]
    group = crd["spec"]["group"]
    schemas = {
        f"{group}/{v['name']}": v["schema"]["openAPIV3Schema"]
        for v in crd["spec"]["versions"]
        if v.get("served")
    }
    with open(objects_path) as f:
        objects = [o for o in yaml.safe_load_all(f) if o and o.get("kind") == kind]
    if not objects:
        print(f"no {kind} in {objects_path}", file=sys.stderr)
        return 2
    failed = False
    for obj in objects:
        name = obj.get("metadata", {}).get("name", "?")
        schema = schemas.get(obj.get("apiVersion"))
        if schema is None:
            print(f"{kind} {name}: apiVersion {obj.get('apiVersion')} is not served by the CRD")
            failed = True
            continue
        # Structural schemas prune unknown fields; reject them instead, so typos show.
        strict = close_objects(schema)
        for error in jsonschema.Draft7Validator(strict).iter_errors(obj):
            path = ".".join(str(p) for p in error.absolute_path)
            print(f"{kind} {name}: {path}: {error.message}")
            failed = True
    return 1 if failed else 0


def close_objects(schema):
    """The schema with `additionalProperties: false` wherever an object lists its properties
    and does not preserve unknown fields (apiVersion, kind and metadata are checked by the API)."""
    if isinstance(schema, dict):
        out = {k: close_objects(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [close_objects(v) for v in schema]
    return schema


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
