"""POST /slack/events: Slack's Events API, interactivity and slash commands over HTTP."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.concurrency import run_in_threadpool

from qa_service.errors import NotFoundError

router = APIRouter()


@router.post("/slack/events", include_in_schema=False)
async def slack_events(request: Request) -> Response:
    """Signed by Slack (requests older than 5 minutes or with a bad signature get 401)."""
    slack_app = getattr(request.app.state, "slack", None)
    if slack_app is None:
        raise NotFoundError("The Slack bot is not configured: set QA_SLACK_BOT_TOKEN and QA_SLACK_SIGNING_SECRET.")
    body = await request.body()
    response = await run_in_threadpool(slack_app.dispatch, to_bolt_request(request, body))
    return to_starlette_response(response)
