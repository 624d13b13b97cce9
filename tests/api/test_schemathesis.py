"""Property-based API testing from /openapi.json: no 5xx, responses match the documented schemas."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from schemathesis import checks

from qa_service.api.app import create_app
from qa_service.service import QAService
from tests.api.conftest import ADMIN
from tests.conftest import SEEDS, hash_settings, serve_in_thread

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    index_dir: Path = tmp_path_factory.mktemp("fuzz") / "index"
    config = hash_settings(index_dir).model_copy(
        update={"admin_api_key": SecretStr(ADMIN), "rate_limit_burst": 100_000, "rate_limit_per_minute": 100_000}
    )
    QAService(config).index_paths([SEEDS])
    with serve_in_thread(create_app(config)) as url:
        yield url


def test_api_conforms_to_its_schema(base_url: str) -> None:
    """Every operation, with generated valid and edge-case inputs (schemathesis' pytest plugin does not
    support pytest 9 yet, so operations are driven through Hypothesis directly)."""
    api = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /v1/chat",
        "POST /v1/chat/completions",
        "POST /v1/documents",
        "GET /v1/conversations/{conversation_id}",
        "POST /v1/feedback",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN}"}, checks=CHECKS)

        check()
