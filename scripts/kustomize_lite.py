#!/usr/bin/env python3
"""Renders a kustomization the way `kubectl kustomize` does, for the subset k8s/ uses, offline.

    python3 scripts/kustomize_lite.py k8s/overlays/aws > aws.yaml

kustomize itself cannot be installed on the build machines (no package carries it), so CI renders
with this and validates the result against the Kubernetes schemas (scripts/validate-manifests.sh).
Supported: `resources` (files and directories holding a kustomization), `namespace`, `labels` (pairs
added to metadata.labels), `images` (newName, newTag) and `patches` with a `path` to strategic-merge
patches matched by kind and name: maps merge, lists of maps with a `name` merge by name, other lists
are replaced. Anything else in a kustomization is an error, so the subset cannot drift silently.
Needs PyYAML.
"""

import copy
import pathlib
import sys

import yaml

KNOWN = {"apiVersion", "kind", "namespace", "labels", "resources", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume", "StorageClass"}


def merge(base, patch):
    """Strategic merge of `patch` into `base` (both plain YAML values)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(x, dict) and "name" in x for x in base + patch):
        out = [copy.deepcopy(x) for x in base]
        for item in patch:
            match = next((i for i, x in enumerate(out) if x["name"] == item["name"]), None)
            if match is None:
                out.append(copy.deepcopy(item))
            else:
                out[match] = merge(out[match], item)
        return out
    return copy.deepcopy(patch)


def set_image(doc, images):
    """Rewrites container images whose name (before the tag) matches an `images` entry."""
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        name = container["image"].rsplit(":", 1)[0]
        for image in images:
            if image["name"] == name:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', 'latest')}"


def render(directory: pathlib.Path) -> list:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KNOWN
    if unknown:
        sys.exit(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    docs = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            docs.extend(render(path))
        else:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for patch_ref in kustomization.get("patches", []):
        for patch in yaml.safe_load_all((directory / patch_ref["path"]).read_text()):
            key = (patch["kind"], patch["metadata"]["name"])
            targets = [i for i, d in enumerate(docs) if (d["kind"], d["metadata"]["name"]) == key]
            if not targets:
                sys.exit(f"{directory}: patch {patch_ref['path']} matches no resource {key}")
            for i in targets:
                docs[i] = merge(docs[i], patch)
    for doc in docs:
        for group in kustomization.get("labels", []):
            doc["metadata"].setdefault("labels", {}).update(group.get("pairs", {}))
        if "namespace" in kustomization and doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = kustomization["namespace"]
        set_image(doc, kustomization.get("images", []))
    return docs


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1].strip())
    yaml.safe_dump_all(render(pathlib.Path(sys.argv[1])), sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
