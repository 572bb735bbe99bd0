"""deploy/k8s renders, every manifest is valid against the Kubernetes schemas, and holds what
production needs: probes, resources, no root, read-only root, no Secret committed, and more."""

import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
VERSION = "1.30.0"
SERVICES = {"security": 8081, "account": 8082, "integration": 8083}
SECRETS = {f"alluse-{kind}-{s}" for kind in ("redis", "database") for s in SERVICES}
SECRETS |= {"alluse-security-keys", "alluse-signing-keys", "alluse-database-security-owner"}
SECRETS |= {"alluse-redis-console"}  # the console has no database and signs nothing
DEPLOYED = {f"alluse-{s}" for s in (*SERVICES, "console")}


def render(target: str) -> list[dict[str, Any]]:
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


def test_secrets_are_referenced_by_name_and_never_committed(manifests: Any) -> None:
    assert of(manifests, "Secret") == {}
    refs = set()
    for doc in [*of(manifests, "Deployment").values(), *of(manifests, "Job").values()]:
        for c in doc["spec"]["template"]["spec"]["containers"]:
            refs |= {
                e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", []) if "valueFrom" in e
            }
    assert refs == SECRETS
    settings = next(iter(of(manifests, "ConfigMap").values()))["data"]
    assert not any("PASSWORD" in k or "KEYS" in k for k in settings)


def test_each_service_has_a_service_a_budget_and_a_migration_job(manifests: Any) -> None:
    assert set(of(manifests, "Service")) == DEPLOYED
    # The console runs one pod (its sessions are in memory): a budget would block node drains.
    assert set(of(manifests, "PodDisruptionBudget")) == {f"alluse-{s}" for s in SERVICES}
    assert of(manifests, "Deployment")["alluse-console"]["spec"]["replicas"] == 1
    jobs = of(manifests, "Job")
    for service in SERVICES:
        (c,) = jobs[f"alluse-migrate-{service}"]["spec"]["template"]["spec"]["containers"]
        assert c["command"] == ["python", "-m", f"services.{service}", "migrate"]
    # The security schema is migrated by its owner, never by the role the service runs as.
    (c,) = jobs["alluse-migrate-security"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert (
        env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "alluse-database-security-owner"
    )
    assert env["ALLUSE_DATABASE_RUNTIME_ROLE"]["value"] == "security"


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
    assert opened == {"alluse-security-ingress", "alluse-metrics-ingress", "alluse-console-ingress",
                      "alluse-console-reads"}  # fmt: skip
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
