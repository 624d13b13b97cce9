"""Which collection each Slack channel asks (admin key): list, map, unmap. See `qa_service.slack.channels`."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response
from starlette.concurrency import run_in_threadpool

from qa_service.api.deps import AdminAuth, ServiceDep, SharedDep
from qa_service.api.routes.responses import errors
from qa_service.api.schemas import SlackChannelList, SlackChannelMapping, SlackChannelTarget
from qa_service.errors import IndexNotFoundError, NotFoundError
from qa_service.slack.channels import ChannelMap

router = APIRouter(tags=["slack"], dependencies=[AdminAuth])
ChannelId = Path(..., min_length=1, max_length=32, pattern=r"^[A-Z0-9]+$", description="The channel id (C0123ABCD).")


def _channels(shared: SharedDep) -> ChannelMap:
    if shared.slack_channels is None:  # pragma: no cover - open_state always builds one
        raise IndexNotFoundError("The Slack channel map is not available.")
    return shared.slack_channels


@router.get(
    "/v1/slack/channels",
    response_model=SlackChannelList,
    responses=errors(401, 403, 429),
    summary="The Slack channels mapped to collections, and what unmapped channels and DMs ask.",
)
async def list_channels(shared: SharedDep) -> SlackChannelList:
    channels = _channels(shared)
    mappings = await run_in_threadpool(channels.mappings)
    return SlackChannelList(
        channels=[SlackChannelMapping(channel=m.channel, collection=m.collection, source=m.source) for m in mappings],
        default_collection=channels.default_collection,
        dm_collection=channels.dm_collection,
    )


@router.put(
    "/v1/slack/channels/{channel_id}",
    response_model=SlackChannelMapping,
    responses=errors(401, 403, 404, 422, 429),
    summary="Answer a Slack channel from a collection (replaces its mapping).",
)
async def map_channel(
    body: SlackChannelTarget, service: ServiceDep, shared: SharedDep, channel_id: str = ChannelId
) -> SlackChannelMapping:
    await run_in_threadpool(service.collection, body.collection)  # 404 for an unknown collection
    await run_in_threadpool(_channels(shared).set, channel_id, body.collection)
    return SlackChannelMapping(channel=channel_id, collection=body.collection, source="api")


@router.delete(
    "/v1/slack/channels/{channel_id}",
    status_code=204,
    responses=errors(401, 403, 404, 422, 429),
    summary="Remove a channel's mapping set through the API (it then asks the settings' mapping or the default).",
)
async def unmap_channel(shared: SharedDep, channel_id: str = ChannelId) -> Response:
    if not await run_in_threadpool(_channels(shared).delete, channel_id):
        raise NotFoundError(f"Channel {channel_id} has no mapping set through the API.")
    return Response(status_code=204)
