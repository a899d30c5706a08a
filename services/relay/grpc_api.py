"""gRPC handlers of the media relay: translate messages, call the relay, translate back."""

from __future__ import annotations

import grpc
from parley.relay.v1 import media_pb2, relay_pb2, relay_pb2_grpc

from services.core.errors import INVALID_ARGUMENT, require_fields
from services.core.media.kinds import MEDIA_KIND, kind_name
from services.relay.feed import FeedTrack
from services.relay.relay import PublishOrder, Relay, SubscribeOrder
from services.relay.stats import feed_stats, subscription_stats


def _track(track: FeedTrack) -> media_pb2.Track:
    return media_pb2.Track(kind=MEDIA_KIND[track.kind], codec=track.codec.mimeType)


class RelayServicer(relay_pb2_grpc.RelayServiceServicer):
    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    async def Publish(
        self, request: relay_pb2.PublishRequest, context: grpc.aio.ServicerContext
    ) -> relay_pb2.PublishResponse:
        require_fields(room_id=request.room_id, uid=request.uid, feed_id=request.feed_id)
        feed, answer = await self._relay.publish(
            PublishOrder(
                biz_name=request.biz_name,
                room_id=request.room_id,
                uid=request.uid,
                feed_id=request.feed_id,
                sdp_offer=request.sdp_offer,
            )
        )
        return relay_pb2.PublishResponse(
            sdp_answer=answer,
            tracks=[_track(track) for track in feed.tracks.values()],
            publication_id=feed.publication_id,
        )

    async def Unpublish(
        self, request: relay_pb2.UnpublishRequest, context: grpc.aio.ServicerContext
    ) -> relay_pb2.UnpublishResponse:
        closed = await self._relay.unpublish(request.room_id, request.feed_id)
        return relay_pb2.UnpublishResponse(closed_subscription_ids=closed)

    async def Subscribe(
        self, request: relay_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> relay_pb2.SubscribeResponse:
        require_fields(room_id=request.room_id, uid=request.uid, feed_id=request.feed_id)
        subscription, answer = await self._relay.subscribe(
            SubscribeOrder(
                biz_name=request.biz_name,
                room_id=request.room_id,
                uid=request.uid,
                feed_id=request.feed_id,
                sdp_offer=request.sdp_offer,
                audio=request.audio,
                video=request.video,
            )
        )
        return relay_pb2.SubscribeResponse(
            subscription_id=subscription.subscription_id,
            sdp_answer=answer,
            tracks=[_track(media.source) for media in subscription.media],
        )

    async def Unsubscribe(
        self, request: relay_pb2.UnsubscribeRequest, context: grpc.aio.ServicerContext
    ) -> relay_pb2.UnsubscribeResponse:
        await self._relay.unsubscribe(request.room_id, request.subscription_id)
        return relay_pb2.UnsubscribeResponse()

    async def GetStats(
        self, request: relay_pb2.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> relay_pb2.GetStatsResponse:
        target = request.WhichOneof("target")
        if target == "feed_id":
            feed = self._relay.feed(request.room_id, request.feed_id)
            subscriptions = sum(s.feed is feed for s in self._relay.subscriptions.values())
            return relay_pb2.GetStatsResponse(feed=await feed_stats(feed, subscriptions))
        if target == "subscription_id":
            subscription = self._relay.subscription(request.room_id, request.subscription_id)
            return relay_pb2.GetStatsResponse(subscription=await subscription_stats(subscription))
        raise INVALID_ARGUMENT("name a feed_id or a subscription_id")

    async def SetFeedPaused(
        self, request: relay_pb2.SetFeedPausedRequest, context: grpc.aio.ServicerContext
    ) -> relay_pb2.SetFeedPausedResponse:
        require_fields(room_id=request.room_id, feed_id=request.feed_id)
        self._relay.set_feed_paused(request.room_id, request.feed_id, kind_name(request.kind), request.paused)
        return relay_pb2.SetFeedPausedResponse()

    async def SetSubscriptionPaused(
        self, request: relay_pb2.SetSubscriptionPausedRequest, context: grpc.aio.ServicerContext
    ) -> relay_pb2.SetSubscriptionPausedResponse:
        require_fields(room_id=request.room_id, subscription_id=request.subscription_id)
        self._relay.set_subscription_paused(
            request.room_id, request.subscription_id, kind_name(request.kind), request.paused
        )
        return relay_pb2.SetSubscriptionPausedResponse()
