"""Invitations to rooms (seed 002 invite / replyInvite / OnInviteReply): a participant invites users of its
app; every session of an online invitee hears it, and the inviter hears the answer, or "offline" at once
for a user with no session, or when the invitee's last session ends before answering. Joining the room
answers every invitation to it (`Room.admit`). The waiting invitations are part of the room's record.
"""

from __future__ import annotations

from parley.rooms.v1 import delivery_pb2

from services.rooms.errors import INVITATION_NOT_FOUND, INVITEE_IS_INVITER
from services.rooms.outcome import Effects
from services.rooms.pushes import InviteReply
from services.rooms.room import Room
from services.rooms.sessions import SessionBook


class Invitations:
    def __init__(self, sessions: SessionBook, effects: Effects) -> None:
        self._sessions = sessions
        self._effects = effects

    def invite(self, room: Room, inviter: str, uids: list[str], extra: str) -> None:
        if inviter in uids:
            raise INVITEE_IS_INVITER()
        for uid in dict.fromkeys(uids):
            invitee_sessions = self._sessions.sessions_of(room.biz_name, uid)
            if not invitee_sessions:
                self._replied(room, inviter, uid, InviteReply.OFFLINE)
                continue
            room.invitations.setdefault(uid, {})[inviter] = extra
            invited = delivery_pb2.InviteRequested(
                room_id=room.room_id, rtoken=room.rtoken, inviter=inviter, extra=extra
            )
            for invitee in invitee_sessions:
                self._sessions.push(invitee, invited)

    def reply(self, room: Room | None, room_id: str, invitee: str, reply: InviteReply, inviter: str) -> None:
        """`room` is None when there is no room `room_id` of the invitee's app; `inviter` empty answers
        every inviter."""
        invitation = room.invitations.get(invitee) if room is not None else None
        if room is None or not invitation or (inviter and inviter not in invitation):
            raise INVITATION_NOT_FOUND(f"no invitation to room {room_id} is waiting for an answer")
        for answered in [inviter] if inviter else list(invitation):
            del invitation[answered]
            self._replied(room, answered, invitee, reply)
        if not invitation:
            del room.invitations[invitee]

    def invitee_gone(self, room: Room, invitee: str) -> None:
        """The invitee has no session left: its inviters hear "offline"."""
        for inviter in room.invitations.pop(invitee, {}):
            self._replied(room, inviter, invitee, InviteReply.OFFLINE)

    def _replied(self, room: Room, inviter: str, invitee: str, reply: InviteReply) -> None:
        self._effects.push_user(
            room.biz_name,
            inviter,
            delivery_pb2.InviteReplied(room_id=room.room_id, invitee=invitee, reply=reply),
        )
