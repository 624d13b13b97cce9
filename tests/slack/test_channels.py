"""Which collection a Slack channel asks: API mappings over settings' over the defaults, both backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa_service.errors import InvalidInputError
from qa_service.settings import Settings
from qa_service.shared_state import SharedState, open_state
from qa_service.slack.channels import ChannelMap, settings_mappings


@pytest.fixture(params=["faiss", "pgvector"])
def make_map(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    url = request.getfixturevalue("database_url") if request.param == "pgvector" else None
    made: list[SharedState] = []

    def make(**extra: object) -> ChannelMap:
        state = open_state(Settings(index_dir=tmp_path, store=request.param, database_url=url, **extra))  # type: ignore[arg-type]
        made.append(state)
        assert state.slack_channels is not None
        return state.slack_channels

    yield make
    for state in made:
        state.close()


def test_api_mappings_win_over_settings_and_defaults(make_map, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    file = tmp_path / "channels.json"
    file.write_text(json.dumps({"CFILE": "eng", "CBOTH": "eng"}))
    channels = make_map(slack_channels={"CHR": "hr", "CBOTH": "hr"}, slack_channels_file=file)
    assert channels.collection_for("CHR", direct=False) == "hr"
    assert channels.collection_for("CFILE", direct=False) == "eng"
    assert channels.collection_for("CBOTH", direct=False) == "hr"  # QA_SLACK_CHANNELS wins over the file
    assert channels.collection_for("COTHER", direct=False) == "default"
    assert channels.collection_for("D123", direct=True) == "default"
    channels.set("CHR", "faq")
    assert channels.collection_for("CHR", direct=False) == "faq"
    other = make_map(slack_channels={"CHR": "hr"})  # another replica (or a restart) sees the API's mapping
    assert other.collection_for("CHR", direct=False) == "faq"
    listed = {(m.channel, m.collection, m.source) for m in channels.mappings()}
    assert listed == {("CHR", "faq", "api"), ("CFILE", "eng", "settings"), ("CBOTH", "hr", "settings")}
    assert channels.delete("CHR") and not channels.delete("CHR")
    assert channels.collection_for("CHR", direct=False) == "hr"


def test_renamed_and_deleted_collections_follow(make_map) -> None:  # type: ignore[no-untyped-def]
    channels = make_map()
    channels.set("C1", "hr")
    channels.set("C2", "hr")
    channels.set("C3", "eng")
    channels.rename_collection("hr", "people")
    assert channels.collection_for("C1", direct=False) == "people"
    assert channels.forget_collection("people") == 2
    assert channels.collection_for("C1", direct=False) == "default"
    assert channels.collection_for("C3", direct=False) == "eng"


def test_empty_defaults_refuse_unmapped_channels_and_direct_messages(make_map) -> None:  # type: ignore[no-untyped-def]
    channels = make_map(slack_default_collection="", slack_dm_collection="")
    assert channels.collection_for("COTHER", direct=False) is None
    assert channels.collection_for("D1", direct=True) is None
    channels.set("CHR", "hr")
    assert channels.collection_for("CHR", direct=False) == "hr"


def test_bad_mappings_say_what_to_fix(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="channel id"):
        settings_mappings(Settings(index_dir=tmp_path, slack_channels={"#general": "hr"}))
    with pytest.raises(InvalidInputError, match="no collection name"):
        settings_mappings(Settings(index_dir=tmp_path, slack_channels={"C1": "HR Team"}))
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(InvalidInputError, match="JSON object"):
        settings_mappings(Settings(index_dir=tmp_path, slack_channels_file=bad))
