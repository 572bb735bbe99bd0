"""deploy/k8s renders, every manifest is valid against the Kubernetes schemas, and holds what
production needs: probes, resources, no root, read-only root, no Secret committed, and more."""

import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # the package ships no type information
import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
VERSION = "1.30.0"
SERVICES = {"security": 8081, "account": 8082, "integration": 8083}
SECRETS = {f"alluse-{kind}-{s}" for kind in ("redis", "database") for s in SERVICES}
SECRETS |= {"alluse-security-keys", "alluse-signing-keys", "alluse-database-security-owner"}
SECRETS |= {"alluse-redis-console"}  # the console has no database and signs nothing
SECRETS |= {"alluse-postgres-admin"}  # the roles Job alone
ROOT = K8S.parents[1]
DEPLOYED = {f"alluse-{s}" for s in (*SERVICES, "console")}


def render(target: str | Path) -> list[dict[str, Any]]:
    """`kubectl kustomize`; without kubectl, the base's resources as they are (no overlay)."""
    if shutil.which("kubectl"):
        out = subprocess.run(
            ["kubectl", "kustomize", str(K8S / target)], capture_output=True, text=True, check=True
        ).stdout
        return [d for d in yaml.safe_load_all(out) if d]
    if target != "base":
        pytest.fail("kubectl is needed to render an overlay (kustomize patches)")
    warnings.warn("kubectl absent: the base was read resource by resource", stacklevel=1)
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / "base" / name).read_text()) if d]
    return docs


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    pod = doc["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


@pytest.fixture(scope="module", params=["base", "overlays/production"])
def manifests(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def of(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_every_manifest_is_valid_against_the_kubernetes_schemas(manifests: Any) -> None:
    for doc in manifests:
        kubernetes_validate.validate(doc, VERSION, strict=True)  # raises on the first problem
    assert len(manifests) >= 20


def test_deployments_probe_health_and_readiness_and_run_locked_down(manifests: Any) -> None:
    deployments = of(manifests, "Deployment")
    assert set(deployments) == DEPLOYED
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]) & set(c["resources"]["limits"])
        assert (
            pod["securityContext"]["runAsNonRoot"] is True
            and pod["securityContext"]["runAsUser"] != 0
        )
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert pod["automountServiceAccountToken"] is False
        for init in pod.get("initContainers", []):
            assert init["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert init["securityContext"]["capabilities"]["drop"] == ["ALL"], name


def test_secrets_are_referenced_by_name_and_never_committed(manifests: Any) -> None:
    assert of(manifests, "Secret") == {}
    refs = set()
    for doc in [*of(manifests, "Deployment").values(), *of(manifests, "Job").values()]:
        for c in containers(doc):
            refs |= {
                e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", []) if "valueFrom" in e
            }
    assert refs == SECRETS
    settings = next(iter(of(manifests, "ConfigMap").values()))["data"]
    assert not any("PASSWORD" in k or "KEYS" in k for k in settings)


def test_each_service_pod_migrates_its_schema_before_it_starts(manifests: Any) -> None:
    """`kubectl apply` orders nothing: the pods themselves run their migration first (an init
    container, retried until PostgreSQL and the roles are there), and no migration Job exists
    whose immutable template a new image would collide with."""
    assert set(of(manifests, "Service")) == DEPLOYED
    # The console runs one pod (its sessions are in memory): a budget would block node drains.
    assert set(of(manifests, "PodDisruptionBudget")) == {f"alluse-{s}" for s in SERVICES}
    assert of(manifests, "Deployment")["alluse-console"]["spec"]["replicas"] == 1
    assert set(of(manifests, "Job")) == {"alluse-postgres-roles"}
    deployments = of(manifests, "Deployment")
    for service in SERVICES:
        pod = deployments[f"alluse-{service}"]["spec"]["template"]["spec"]
        (init,) = pod["initContainers"]
        assert init["command"] == ["python", "-m", f"services.{service}", "migrate"]
        assert init["image"] == pod["containers"][0]["image"]  # the schema of the code it runs
    assert "initContainers" not in deployments["alluse-console"]["spec"]["template"]["spec"]
    # The security schema is migrated by its owner, never by the role the service runs as;
    # the owner's URL is the init container's alone.
    pod = deployments["alluse-security"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["initContainers"][0]["env"]}
    assert (
        env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "alluse-database-security-owner"
    )
    assert env["ALLUSE_DATABASE_RUNTIME_ROLE"]["value"] == "security"
    running = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert (
        running["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "alluse-database-security"
    )


def test_the_roles_job_runs_the_compose_script_and_survives_an_upgrade(tmp_path: Path) -> None:
    """The Job runs deploy/postgres/init-roles.sh itself, and a release with another image
    leaves its template unchanged (re-applying an unchanged Job is accepted; a changed one is
    refused, since a Job's template is immutable)."""
    copy = K8S / "base" / "postgres-init-roles.sh"
    assert copy.read_bytes() == (ROOT / "deploy" / "postgres" / "init-roles.sh").read_bytes()
    jobs = []
    for tag in ("0.1.0", "0.2.0"):
        overlay = tmp_path / tag
        overlay.mkdir()
        base = os.path.relpath(K8S / "base", overlay)
        kustomization = {
            "resources": [base],
            "images": [{"name": "alluse/platform", "newTag": tag}],
        }
        (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        docs = render(overlay)
        jobs.append(of(docs, "Job")["alluse-postgres-roles"])
        deployed = {c["image"] for d in of(docs, "Deployment").values() for c in containers(d)}
        assert deployed == {f"alluse/platform:{tag}"}
    assert jobs[0] == jobs[1]
    job = jobs[0]
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["sh", "/scripts/init-roles.sh"]
    assert (
        job["spec"]["ttlSecondsAfterFinished"] > 0
    )  # gone after a while: the next apply re-runs it


def test_network_policies_deny_by_default_and_open_only_the_trust_models_paths(
    manifests: Any,
) -> None:
    policies = of(manifests, "NetworkPolicy")
    deny = policies["alluse-default-deny"]["spec"]
    assert (
        deny["policyTypes"] == ["Ingress", "Egress"]
        and "ingress" not in deny
        and "egress" not in deny
    )
    security_in = policies["alluse-security-ingress"]["spec"]["ingress"]
    assert [p["port"] for rule in security_in for p in rule["ports"]] == [8081]
    # Only the security service takes connections from outside the platform and monitoring.
    # Only the security service and the console (through the ingress controller's pods) take
    # connections from outside the platform and monitoring.
    opened = {p["metadata"]["name"] for p in policies.values() if p["spec"].get("ingress")}
    assert opened == {
        "alluse-security-ingress",
        "alluse-metrics-ingress",
        "alluse-console-ingress",
        "alluse-console-reads",
    }
    (console_in,) = policies["alluse-console-ingress"]["spec"]["ingress"]
    assert [p["port"] for p in console_in["ports"]] == [8084]
    assert console_in["from"][0]["podSelector"]["matchLabels"] == {
        "alluse.io/console-client": "true"
    }
    (reads,) = policies["alluse-console-reads"]["spec"]["ingress"]
    assert reads["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "alluse-console"}}}
    ]


def test_the_consumers_scale_on_consumer_lag_from_the_prometheus_adapter(manifests: Any) -> None:
    hpas = of(manifests, "HorizontalPodAutoscaler")
    assert set(hpas) == {"alluse-account", "alluse-integration"}
    adapter = yaml.safe_load((K8S / "prometheus-adapter-values.yaml").read_text())
    served = {r["name"]["as"] for r in adapter["rules"]["external"]}
    for hpa in hpas.values():
        (metric,) = hpa["spec"]["metrics"]
        assert metric["type"] == "External" and metric["external"]["metric"]["name"] in served
    assert "alluse_stream_lag" in adapter["rules"]["external"][0]["seriesQuery"]


def test_production_runs_three_replicas_in_its_own_restricted_namespace() -> None:
    docs = render("overlays/production")
    (ns,) = of(docs, "Namespace").values()
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(d["metadata"].get("namespace") == "alluse" for d in docs if d["kind"] != "Namespace")
    replicas = {n: d["spec"]["replicas"] for n, d in of(docs, "Deployment").items()}
    assert replicas == {**dict.fromkeys(DEPLOYED, 3), "alluse-console": 1}


def test_production_pins_the_image_by_digest_and_lists_every_secret() -> None:
    docs = render("overlays/production")
    images = {c["image"] for d in of(docs, "Deployment").values() for c in containers(d)}
    assert images and all(
        re.fullmatch(r"[^@:]+(:\d+)?/[^@]+@sha256:[0-9a-f]{64}", i) for i in images
    )
    text = (K8S / "overlays" / "production" / "kustomization.yaml").read_text()
    listed = set()
    for stem, names in re.findall(r"(alluse-[a-z-]+?)(?:-\{([a-z,-]+)\})?[\s`]", text):
        listed |= {f"{stem}-{n}" for n in names.split(",")} if names else {stem}
    assert listed >= SECRETS, SECRETS - listed


def test_the_operator_guide_creates_the_namespace_then_every_secret_before_applying() -> None:
    """docs/operators/deploy.md, Kubernetes: on a fresh cluster the namespace must exist before
    `kubectl -n alluse create secret`, and every Secret must exist before the apply."""
    guide = (ROOT / "docs" / "operators" / "deploy.md").read_text()
    steps = [
        line.strip()
        for block in re.findall(r"```sh\n(.*?)```", guide, re.S)
        for line in block.splitlines()
        if line.strip().startswith("kubectl")
    ]
    first_secret = next(i for i, s in enumerate(steps) if "create secret" in s)
    namespace = next(
        i for i, s in enumerate(steps) if "namespace.yaml" in s or "create namespace" in s
    )
    applied = next(i for i, s in enumerate(steps) if s.startswith("kubectl apply -k"))
    assert namespace < first_secret < applied
    text = "\n".join(steps[:applied])
    for secret in SECRETS:  # by name, or in a loop over the services (`alluse-redis-$s`)
        looped = re.sub(r"-(security-owner|security|account|integration|console)$", "-$s", secret)
        assert secret in text or looped in text, secret


def test_lanes_are_required_and_no_pod_holds_the_acl_admin(manifests: Any) -> None:
    """Lanes (docs/lanes.md): ALLUSE_LANES explicit for every pod (the shared ConfigMap); the
    ACL admin's connection (ACL SETUSER can grant anything) is in no pod, and the static
    `engine` Redis user of before lanes is gone."""
    maps = of(manifests, "ConfigMap")
    (settings,) = (d["data"] for n, d in maps.items() if n.startswith("alluse-settings"))
    assert settings["ALLUSE_LANES"] == "required"
    for name, d in of(manifests, "Deployment").items():
        for c in d["spec"]["template"]["spec"]["containers"]:
            refs = [e.get("configMapRef", {}).get("name", "") for e in c.get("envFrom", [])]
            assert any(r.startswith("alluse-settings") for r in refs), name
    text = yaml.safe_dump_all(manifests)
    assert "alluse-redis-acladmin" not in text and "ALLUSE_REDIS_ADMIN_URL" not in text
    assert "ENGINE" not in text and "redis://engine:" not in text


def test_the_operator_guide_onboards_clients_with_the_acl_admin_kept_out_of_the_pods() -> None:
    guide = (ROOT / "docs" / "operators" / "deploy.md").read_text()
    assert "ENGINE" not in guide
    assert "create secret generic alluse-redis-acladmin" in guide
    assert "read -r ALLUSE_REDIS_ADMIN_URL" in guide  # on stdin, for that one command
    assert "ALLUSE_REDIS_ACL_FILE" in guide and "create-client" in guide
