"""conf/k8s: the manifests are valid Kubernetes objects, and they fit appgw.

Every document of appgw.yaml against Kubernetes' object schemas (no
cluster: tests/support/k8s.py), the Dockerfile's entrypoint and the
container's args against appgw's own argument parser, and the pieces that
must agree with each other: the readiness probe and the admin listener, the
projected volume and the paths in the configuration, the grace period and
the drain timeout.
"""

from __future__ import annotations

import argparse
import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import trustme

from appgw.cli import build_parser
from appgw.config import load
from appgw.master.arbiter import FAST_STOP_GRACE
from appgw.master.generations import drain_budget
from tests.support.gateway import write_certificates
from tests.support.k8s import REPO, dockerfile_exec_form, documents, problems

CONFIG_KEY = "appgw.toml"


def by_kind() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for document in documents():
        assert document["kind"] not in found, f"two documents of kind {document['kind']}"
        found[document["kind"]] = document
    return found


def pod_spec() -> dict[str, Any]:
    return by_kind()["Deployment"]["spec"]["template"]["spec"]


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    return only


def config_text() -> str:
    return by_kind()["Secret"]["stringData"][CONFIG_KEY]


def config_path_in_pod() -> str:
    args = container()["args"]
    return args[args.index("-c") + 1]


def test_every_document_is_a_valid_kubernetes_object() -> None:
    kinds = by_kind()
    assert set(kinds) == {"Secret", "Deployment", "PodDisruptionBudget", "Service"}
    for document in kinds.values():
        assert problems(document) == [], document["kind"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["spec"]["template"]["spec"].update(terminationGracePeriod=60), "unknown"),
        (lambda d: d["spec"].update(replicas="2"), "Expected `int | null`, got `str`"),
        (lambda d: d["spec"].pop("selector"), "missing required field `selector`"),
        (
            lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"][
                "httpGet"
            ].update(pth="/healthz"),
            "readinessProbe.httpGet.pth: unknown field",
        ),
    ],
)
def test_the_schema_check_refuses_what_kubernetes_refuses(change: Any, expected: str) -> None:
    deployment = copy.deepcopy(by_kind()["Deployment"])
    change(deployment)
    found = problems(deployment)
    assert any(expected in problem for problem in found), found


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(AssertionError, match="no such kind"):
        problems({"apiVersion": "apps/v1", "kind": "Deploymnt", "metadata": {"name": "x"}})


def _subcommand(args: list[str]) -> argparse.ArgumentParser:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert args and args[0] in sub.choices, f"{args}: not an appgw command"
    return sub.choices[args[0]]


def assert_real_appgw_args(args: list[str]) -> argparse.Namespace:
    """`args` parse with appgw's parser, each option spelt out (no abbreviation)."""
    options = _subcommand(args)._option_string_actions
    for word in args[1:]:
        if word.startswith("-"):
            assert word.split("=", 1)[0] in options, f"{word}: not an option of appgw {args[0]}"
    try:
        return build_parser().parse_args(args)
    except SystemExit as exc:
        raise AssertionError(f"appgw refuses {args}") from exc


def test_the_dockerfile_entrypoint_is_the_appgw_command() -> None:
    assert dockerfile_exec_form("ENTRYPOINT") == ["appgw"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["appgw"] == "appgw.cli:main"
    parsed = assert_real_appgw_args(dockerfile_exec_form("CMD"))
    assert parsed.command == "run"


def test_the_containers_args_are_real_appgw_flags() -> None:
    assert container().get("command", ["appgw"]) == ["appgw"]
    parsed = assert_real_appgw_args(container()["args"])
    assert parsed.command == "run" and parsed.watch
    assert parsed.pid_file == tomllib.loads(config_text())["gateway"]["pid_file"]


def test_the_flag_check_refuses_what_appgw_refuses() -> None:
    with pytest.raises(AssertionError, match="not an option"):
        assert_real_appgw_args(["run", "-c", "x.toml", "--wach"])
    with pytest.raises(AssertionError, match="not an option"):
        assert_real_appgw_args(["run", "--pid", "/tmp/x.pid"])  # argparse would take it
    with pytest.raises(AssertionError, match="refuses"):
        assert_real_appgw_args(["run", "--workers", "two"])
    with pytest.raises(AssertionError, match="not an appgw command"):
        assert_real_appgw_args(["serve"])


def test_readiness_is_the_admin_listeners_healthz() -> None:
    admin = tomllib.loads(config_text())["gateway"]["admin"]
    probe = container()["readinessProbe"]
    assert probe["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert ports[probe["httpGet"]["port"]] == admin["port"]
    # The kubelet connects to the pod's address.
    assert admin["address"] == "0.0.0.0" and admin["public"] is True
    # A 503 while draining must not restart the container.
    assert "livenessProbe" not in container()
    service_ports = {p["targetPort"] for p in by_kind()["Service"]["spec"]["ports"]}
    assert "admin" not in service_ports and admin["port"] not in service_ports


def test_the_certificate_secret_is_projected_beside_the_watched_file() -> None:
    directory = str(Path(config_path_in_pod()).parent)
    (mount,) = [m for m in container()["volumeMounts"] if m["mountPath"] == directory]
    assert "subPath" not in mount, "subPath mounts are never updated"
    (volume,) = [v for v in pod_spec()["volumes"] if v["name"] == mount["name"]]
    secrets = {s["secret"]["name"]: s["secret"] for s in volume["projected"]["sources"]}
    config_items = {
        i["key"]: i["path"] for i in secrets[by_kind()["Secret"]["metadata"]["name"]]["items"]
    }
    assert config_items[CONFIG_KEY] == Path(config_path_in_pod()).name
    tls_items = {i["key"]: i["path"] for i in secrets["appgw-tls"]["items"]}
    certificate = tomllib.loads(config_text())["certificates"]["site"]
    assert certificate["cert"] == f"{directory}/{tls_items['tls.crt']}"
    assert certificate["key"] == f"{directory}/{tls_items['tls.key']}"


def test_the_configuration_in_the_secret_passes_check(tmp_path: Path) -> None:
    loaded = load_pod_config(tmp_path)
    assert set(loaded.listeners) == {"http", "https"}
    assert loaded.gateway.admin is not None and loaded.gateway.admin.port == 9090


def load_pod_config(tmp_path: Path) -> Any:
    """The Secret's configuration, loaded as appgw loads it, certificates in tmp_path."""
    directory = str(Path(config_path_in_pod()).parent)
    files = write_certificates(trustme.CA(), tmp_path)
    text = config_text()
    text = text.replace(f"{directory}/tls.crt", str(files.cert))
    text = text.replace(f"{directory}/tls.key", str(files.key))
    path = tmp_path / CONFIG_KEY
    path.write_text(text)
    return load(str(path))


def test_the_grace_period_covers_prestop_and_the_drain(tmp_path: Path) -> None:
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and re.fullmatch(r"\d+", command[1]), command
    pre_stop = int(command[1])
    # What a graceful stop may take once TERM arrives (master/generations.py):
    # the longest drain timeout plus 15 s, then 5 s after killing what is left.
    stop = drain_budget([load_pod_config(tmp_path)]) + FAST_STOP_GRACE
    assert stop == 30 + 15 + 5
    grace = pod_spec()["terminationGracePeriodSeconds"]
    assert grace >= pre_stop + stop, "the kubelet would kill the pod mid-drain"
    assert grace == pre_stop + stop, "docs/deployment.md explains exactly this sum"


def test_the_disruption_budget_covers_the_deployments_pods() -> None:
    labels = by_kind()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    budget = by_kind()["PodDisruptionBudget"]["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["maxUnavailable"] == 1
    assert by_kind()["Deployment"]["spec"]["replicas"] > budget["maxUnavailable"]
