"""Everything docker/compose.yaml names exists: images built from Dockerfiles here, services, volumes, files, the
commands the containers run (manage.py commands, Python modules, the serving process's routes), and the settings its
environment and env file set are ones the app reads."""

import ast
import importlib.util
import re
from dataclasses import replace
from pathlib import Path

import pytest
from django.core.management import get_commands

from inference.config import serving_config_from_environ
from inference.server import create_app
from tests.conftest import PROJECT_ROOT
from tests.deployment.conftest import (
    COMPOSE_FILE,
    DOCKER_DIR,
    DOCKERFILES,
    compose,
    dockerfile_instructions,
    exec_form,
    interpolated_names,
)

SERVICES = compose()["services"]
ENV_EXAMPLE = DOCKER_DIR / "env.example"
# Where the app reads its settings from the environment (anything else reading one is named in THIRD_PARTY_VARIABLES).
SETTINGS_READERS = [PROJECT_ROOT / "kb" / "settings.py", PROJECT_ROOT / "inference" / "config.py"]
THIRD_PARTY_VARIABLES = {
    "COMPOSE_PROFILES": "docker compose: the profiles to run",
    "PROMETHEUS_MULTIPROC_DIR": "prometheus_client's multiprocess mode",
    "POSTGRES_DB": "the PostgreSQL image",
    "POSTGRES_USER": "the PostgreSQL image",
    "POSTGRES_PASSWORD": "the PostgreSQL image",
}
# Commands run by the app image that are third-party programs, each with how its arguments are checked.
APP_MODULES = {"uvicorn", "celery"}


def _read_by_the_app(name: str) -> bool:
    return any(re.search(rf"[\"']{name}[\"']", path.read_text()) for path in SETTINGS_READERS)


def _env_example_names() -> set[str]:
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))


def _module_defines(module: str, name: str) -> bool:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"no module {module}"
    tree = ast.parse(Path(spec.origin).read_text())
    return any(
        isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
        for node in tree.body
    )


def _assert_app_command_exists(command: list[str]) -> None:
    """A command of the app image: `python manage.py NAME`, `python -m uvicorn MODULE:APP`, `python -m celery -A
    PACKAGE ...`, `python -m inference`."""
    assert command[0] == "python", command
    if command[1] == "manage.py":
        assert (PROJECT_ROOT / "manage.py").is_file()
        assert command[2] in get_commands(), f"manage.py has no command {command[2]}"
    elif command[1:3] == ["-m", "uvicorn"]:
        module, _, application = command[3].partition(":")
        assert _module_defines(module, application), f"{module} defines no {application}"
    elif command[1:3] == ["-m", "celery"]:
        package = command[command.index("-A") + 1]
        assert _module_defines(f"{package}.celery", "app"), f"{package}.celery defines no Celery app"
    elif command[1:3] == ["-m", "inference"]:
        assert importlib.util.find_spec("inference.__main__") is not None
    else:
        pytest.fail(f"a command this test does not know how to check: {command}")


def test_every_built_image_has_its_dockerfile_build_context_and_ignore_file():
    built = {name: service for name, service in SERVICES.items() if "build" in service}
    assert {"migrate", "web", "worker", "beat", "serving", "serving-lmdeploy", "serving-cpu"} <= set(built)
    for name, service in built.items():
        context = (COMPOSE_FILE.parent / service["build"]["context"]).resolve()
        dockerfile = context / service["build"]["dockerfile"]
        assert context == PROJECT_ROOT, name
        assert dockerfile in DOCKERFILES, name
        # BuildKit reads <Dockerfile>.dockerignore beside it: the venvs, var/ and .env never enter the context.
        ignore = dockerfile.with_name(dockerfile.name + ".dockerignore").read_text().splitlines()
        assert [line for line in ignore if line and not line.startswith("#")][0] == "**", f"{name}: not an allowlist"
        assert service["image"].startswith("intranet-kb/"), name


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_what_each_dockerfile_copies_is_in_the_repository_and_let_through_its_ignore_file(dockerfile):
    allowed = [
        line[1:].rstrip("/")
        for line in dockerfile.with_name(dockerfile.name + ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    copies = [i for i in dockerfile_instructions(dockerfile) if i.keyword == "COPY" and "--from=" not in i.arguments]
    assert copies
    for copy in copies:
        *sources, _ = copy.arguments.split()
        for source in sources:
            assert (PROJECT_ROOT / source).exists(), f"{dockerfile.name} copies {source}, which is not here"
            assert any(source == path or source.startswith(path + "/") for path in allowed), (
                f"{dockerfile.name} copies {source}, which its .dockerignore keeps out"
            )


def test_every_command_the_app_containers_run_exists():
    app_services = [service for service in SERVICES.values() if service.get("image", "").startswith("intranet-kb/app")]
    assert len(app_services) == 4
    for service in app_services:
        _assert_app_command_exists(service["command"])
    app_image_cmd = next(i for i in dockerfile_instructions(DOCKER_DIR / "app.Dockerfile") if i.keyword == "CMD")
    _assert_app_command_exists(exec_form(app_image_cmd.arguments))


@pytest.mark.parametrize("dockerfile", [path for path in DOCKERFILES if path.name.startswith("serving-")], ids=str)
def test_every_serving_image_runs_the_serving_process_on_a_route_it_can_read(dockerfile):
    instructions = dockerfile_instructions(dockerfile)
    command = exec_form(next(i for i in instructions if i.keyword == "CMD").arguments)
    entrypoint = [i for i in instructions if i.keyword == "ENTRYPOINT"]
    settings = " ".join(i.arguments for i in instructions if i.keyword == "ENV")
    environment = dict(re.findall(r"(KB_[A-Z_]+)=(\S+)", settings))

    _assert_app_command_exists(command)
    config = serving_config_from_environ(environment)  # an unknown preset or backend raises ValueError
    assert config.host == "0.0.0.0" and config.port == 8765
    for script in [exec_form(i.arguments)[0] for i in entrypoint]:
        copied = next(i for i in instructions if i.keyword == "COPY" and i.arguments.endswith(script))
        source = PROJECT_ROOT / copied.arguments.split()[0]
        assert source.stat().st_mode & 0o111, f"{source} is not executable"


def test_every_route_compose_runs_is_one_the_serving_process_reads_and_its_healthcheck_asks_a_real_path():
    routes = []
    for name in ("serving", "serving-lmdeploy", "serving-cpu"):
        route = SERVICES[name]["environment"]["KB_INFERENCE_ROUTE"]
        routes.append(re.sub(r"\$\{KB_INFERENCE_ROUTE:-(.*)\}", r"\1", route))
    routes.append(re.search(r"^KB_INFERENCE_ROUTE=(.*)$", ENV_EXAMPLE.read_text(), flags=re.MULTILINE).group(1))

    for route in routes:
        config = serving_config_from_environ({"KB_INFERENCE_ROUTE": route})
        application = create_app(replace(config, api_key="a key")).app
        paths = {route.path for route in application.routes}
        for name in ("serving", "serving-lmdeploy", "serving-cpu"):
            probe = " ".join(SERVICES[name]["healthcheck"]["test"])
            assert re.search(r"http://127\.0\.0\.1:8765(/\w+)", probe).group(1) in paths


def test_services_depend_on_services_and_mount_volumes_that_exist():
    declared_volumes = set(compose()["volumes"])
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, f"{name} depends on {dependency}, which is no service"
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source = volume.split(":")[0]
                assert source in declared_volumes, f"{name} mounts {source}, which is not declared"
            else:
                assert volume["type"] == "bind" and volume["read_only"], name
                default = re.fullmatch(r"\$\{\w+:-(.+)\}", volume["source"]).group(1)
                assert (COMPOSE_FILE.parent / default).is_dir(), f"{name} binds {default}, which is not here"
        assert service.get("env_file") in (None, ".env")  # made from env.example by the operator


def test_the_broker_asks_for_a_password_and_every_client_of_it_presents_one():
    redis = SERVICES["redis"]
    password = "${REDIS_PASSWORD:?set REDIS_PASSWORD in docker/.env}"

    assert redis["environment"]["REDIS_PASSWORD"] == password
    assert redis["command"][0] == "redis-server" and redis["command"][-2:] == ["--requirepass", password]
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])
    clients = [name for name, service in SERVICES.items() if "redis" in service.get("depends_on", {})]
    assert clients
    for name in clients:
        broker = SERVICES[name]["environment"]["CELERY_BROKER_URL"]
        assert broker == f"redis://:{password}@redis:6379/0", name


def test_the_gpu_serving_services_reserve_gpus_and_mount_the_models_read_only():
    for name in ("serving", "serving-lmdeploy"):
        service = SERVICES[name]
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": "${KB_GPUS:-1}", "capabilities": ["gpu"]}]
        models = next(v for v in service["volumes"] if isinstance(v, dict))
        assert models["target"] == "/models" and models["read_only"] is True
    assert "deploy" not in SERVICES["serving-cpu"]
    assert {tuple(SERVICES[name]["profiles"]) for name in ("serving", "serving-lmdeploy", "serving-cpu")} == {
        ("gpu",),
        ("lmdeploy",),
        ("cpu",),
    }


def test_every_variable_compose_interpolates_is_in_env_example():
    missing = interpolated_names(COMPOSE_FILE.read_text()) - _env_example_names()

    assert not missing, f"compose.yaml reads {sorted(missing)}, which docker/env.example does not mention"


def test_every_setting_in_env_example_and_compose_environments_is_read_by_something():
    interpolated = interpolated_names(COMPOSE_FILE.read_text())
    environment_names = {name for service in SERVICES.values() for name in service.get("environment", {})}
    for name in _env_example_names() | environment_names:
        assert name in interpolated or name in THIRD_PARTY_VARIABLES or _read_by_the_app(name), (
            f"{name} is set, but neither compose.yaml, the app nor a known program reads it"
        )
