from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from qa_service.api.app import create_app
from qa_service.service import QAService
from qa_service.settings import Settings
from tests.conftest import serve_in_thread

ADMIN = "admin-secret-key"
CHAT = "chat-secret-key"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def api_settings(fake_settings: Settings, seeds_copy: Path) -> Settings:
    QAService(fake_settings).index_paths([seeds_copy])
    return fake_settings.model_copy(update={"admin_api_key": SecretStr(ADMIN)})


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as c:
        yield c


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """Parse a server-sent event stream into (event, data) pairs."""
    events = []
    for block in text.strip().split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        events.append((name, "\n".join(data)))
    return events


@pytest.fixture
def live_server(api_settings: Settings) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, in a thread."""
    with serve_in_thread(create_app(api_settings)) as url:
        yield url
