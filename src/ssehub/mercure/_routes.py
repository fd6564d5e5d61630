"""`/.well-known/mercure`: Mercure's publish and subscribe, through the hub's own API.

Authorization is `ssehub.api`'s (`Api.access`): the same JWT policy, or the app's own decision,
as `/publish` and `/events`. Updates are the hub's events: published with `Api.publish_drafts`,
streamed as a `StreamReply` that every shell serves like `/events`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable

from ssehub.api import Api, Reply, Request, Response, StreamReply
from ssehub.api._access import check_topics
from ssehub.auth import Grants
from ssehub.mercure._discovery import HUB_PATH, discovery_link
from ssehub.mercure._publish import parse_update
from ssehub.mercure._subscribe import resume_point, subscribed_topics
from ssehub.mercure._subscriptions import SUBSCRIPTIONS_PATH, Presence
from ssehub.model import EARLIEST, Draft, EventId

__all__ = ["Mercure", "mount"]


def mount(api: Api, *, subscriptions: bool = False) -> Mercure:
    """Serve Mercure's hub at `/.well-known/mercure` through `api`; with `subscriptions`, its
    active subscriptions too (updates and API: `ssehub.mercure._subscriptions`)."""
    presence = Presence(api) if subscriptions else None
    mercure = Mercure(api, presence)
    api.routes[("GET", HUB_PATH)] = mercure.subscribe
    api.routes[("POST", HUB_PATH)] = mercure.publish
    api.page_headers.append(mercure.link)  # the hub's own pages say where the hub is
    if presence is not None:
        api.routes[("GET", SUBSCRIPTIONS_PATH)] = presence.answer
        api.prefix_routes.append(("GET", SUBSCRIPTIONS_PATH, presence.answer))
    return mercure


def _id_response(ids: list[EventId]) -> Response:
    # "the hub [...] MUST return the identifier of the update in the body, as text/plain"
    [event_id] = ids
    return Response(200, event_id.encode(), "text/plain; charset=utf-8", paced=True)


class Mercure:
    def __init__(self, api: Api, presence: Presence | None = None) -> None:
        self.api = api
        self.presence = presence
        self.link = ("Link", discovery_link())

    # -- publish ------------------------------------------------------------------------------

    def publish(self, request: Request) -> Reply | Awaitable[Reply]:
        grants = self.api.access.publisher(request)
        if inspect.isawaitable(grants):
            return self._publish_later(request, grants)
        draft = parse_update(request)
        if grants is not None:
            check_topics(grants, draft.topics)
        return self.api.publish_drafts([draft], _id_response)

    async def _publish_later(self, request: Request, grants: Awaitable[Grants]) -> Reply:
        draft = parse_update(request)
        check_topics(await grants, draft.topics)
        return await self._published(draft)

    async def _published(self, draft: Draft) -> Reply:
        reply = self.api.publish_drafts([draft], _id_response)
        return reply if isinstance(reply, Response | StreamReply) else await reply

    # -- subscribe ----------------------------------------------------------------------------

    def subscribe(self, request: Request) -> Reply | Awaitable[Reply]:
        topics = subscribed_topics(request)
        resume = resume_point(request)
        grants = self.api.access.subscriber(request)
        announce = self.presence is not None and request.method == "GET"
        if inspect.isawaitable(grants) or resume is not None:
            return self._subscribe_later(topics, resume, grants, announce)
        return self._stream(topics, None, grants, [], announce)

    async def _subscribe_later(
        self,
        topics: tuple[str, ...],
        resume: str | None,
        grants: Grants | Awaitable[Grants] | None,
        announce: bool,
    ) -> Reply:
        if inspect.isawaitable(grants):
            grants = await grants
        headers = []
        if resume is not None:
            headers.append(("Last-Event-ID", await self._resumed_from(topics, resume)))
        return self._stream(topics, resume, grants, headers, announce)

    async def _resumed_from(self, topics: tuple[str, ...], resume: str) -> str:
        """The `Last-Event-ID` response header of a resume (draft-dunglas-mercure-07,
        "Reconnection, State Reconciliation and Event Sourcing"): "When the request contains a
        Last-Event-ID HTTP header or a lastEventID query parameter the hub MUST set a
        Last-Event-ID header on the HTTP response. The value of the Last-Event-ID response
        header MUST be the ID of the event preceding the first one sent to the subscriber".

        For an id the hub does not know, the draft says `earliest`; the Mercure hub, and
        ssehub, answer the last id the hub knows, which is where the stream goes on from
        (after ssehub's `reset` event, which `EventSource`'s `onmessage` never sees)."""
        hub = self.api.hub
        if resume == EARLIEST:
            return EARLIEST
        replay = await hub.replay(topics, resume)
        return hub.latest if replay.reset is not None else resume

    def _stream(
        self,
        topics: tuple[str, ...],
        resume: str | None,
        grants: Grants | None,
        headers: list[tuple[str, str]],
        announce: bool,
    ) -> StreamReply:
        """The stream; `announce`d to the active subscriptions (never for HEAD: no stream)."""
        headers.append(self.link)
        return StreamReply(
            topics,
            resume,
            headers,
            audience=grants,
            expires=None if grants is None else grants.exp,
            on_close=self.presence.connected(topics, grants)
            if announce and self.presence is not None
            else None,
        )
