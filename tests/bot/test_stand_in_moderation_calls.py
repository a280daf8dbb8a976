"""The Bot API stand-in's moderation calls, driven through the real telegram.Bot: chat members and rights
(getChatMember, getChatAdministrators), deleteMessage, restrictChatMember, banChatMember, unbanChatMember with
Telegram's own errors, getMe's privacy mode and my_chat_member updates. PTB's BadRequest drops "Bad Request: " and
capitalizes the rest, so str(exc) is e.g. "Message to delete not found"."""

from __future__ import annotations

import datetime as dtm
import time
from collections.abc import AsyncIterator

import pytest
import telegram
from bot_identity import TOKEN
from fake_telegram import FakeBotApi
from fake_telegram_members import (
    BOT_ID,
    CANT_BAN_IN_PRIVATE_CHATS,
    CANT_REMOVE_CHAT_OWNER,
    CANT_RESTRICT_SELF,
    MESSAGE_CANT_BE_DELETED,
    MESSAGE_CANT_BE_DELETED_FOR_EVERYONE,
    MESSAGE_TO_DELETE_NOT_FOUND,
    NO_ADMINISTRATORS_IN_PRIVATE_CHAT,
    NOT_ENOUGH_RIGHTS_TO_RESTRICT,
    ONLY_FOR_SUPERGROUPS,
    ONLY_FOR_SUPERGROUPS_AND_CHANNELS,
    USER_IS_ADMINISTRATOR,
)
from telegram import (
    ChatMemberAdministrator,
    ChatMemberBanned,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberOwner,
    ChatMemberRestricted,
    ChatPermissions,
)
from telegram.error import BadRequest
from telegram.request import HTTPXRequest

pytestmark = pytest.mark.timeout(60)

SUPERGROUP = -1001234567890
GROUP = -4001  # a basic group
USER = 1001
OWNER = 7
ADMIN = 8


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[telegram.Bot]:
    def request() -> HTTPXRequest:
        return HTTPXRequest(connect_timeout=5.0, read_timeout=5.0, write_timeout=5.0, pool_timeout=5.0)

    async with telegram.Bot(
        TOKEN, base_url=api.base_url, request=request(), get_updates_request=request()
    ) as bot:  # initialize: getMe
        yield bot


def ptb_message(description: str) -> str:
    """What str(BadRequest) says for a Bot API description."""
    return description.removeprefix("Bad Request: ").capitalize()


def test_descriptions_are_telegrams():
    assert MESSAGE_TO_DELETE_NOT_FOUND == "Bad Request: message to delete not found"
    assert MESSAGE_CANT_BE_DELETED == "Bad Request: message can't be deleted"
    assert ONLY_FOR_SUPERGROUPS == "Bad Request: method is available only for supergroups"
    assert (
        NOT_ENOUGH_RIGHTS_TO_RESTRICT == "Bad Request: not enough rights to restrict/unrestrict chat member"
    )
    assert CANT_REMOVE_CHAT_OWNER == "Bad Request: can't remove chat owner"
    assert USER_IS_ADMINISTRATOR == "Bad Request: user is an administrator of the chat"
    assert CANT_RESTRICT_SELF == "Bad Request: can't restrict self"
    assert (
        ptb_message(NOT_ENOUGH_RIGHTS_TO_RESTRICT) == "Not enough rights to restrict/unrestrict chat member"
    )


async def expect_bad_request(call, description: str, api: FakeBotApi, method: str) -> None:
    before = len(api.calls(method, ok_only=False))
    with pytest.raises(BadRequest) as caught:
        await call
    assert str(caught.value) == ptb_message(description)
    assert caught.value.message == ptb_message(description)
    answered = api.calls(method, ok_only=False)
    assert len(answered) == before + 1 and answered[-1].error == description


# -- getMe ----------------------------------------------------------------------------------------


async def test_get_me_reports_privacy_mode_and_group_abilities(api: FakeBotApi, bot: telegram.Bot):
    me = bot.bot  # from initialize's getMe
    assert me.id == BOT_ID and me.is_bot and me.username == "review_mod_bot"
    assert me.can_join_groups is True
    assert me.can_read_all_group_messages is False  # privacy mode on: Telegram's default
    assert me.supports_inline_queries is False

    api.reads_all_group_messages = True
    assert (await bot.get_me()).can_read_all_group_messages is True
    assert len(api.calls("getMe")) == 2


# -- getChatMember / getChatAdministrators --------------------------------------------------------


async def test_get_chat_member_parses_every_status_with_its_rights(api: FakeBotApi, bot: telegram.Bot):
    until = int(time.time()) + 3600
    api.set_member(SUPERGROUP, OWNER, "creator")
    api.set_member(SUPERGROUP, ADMIN, "administrator", can_delete_messages=True, custom_title="mod")
    api.set_member(SUPERGROUP, 11, "restricted", can_send_polls=True, until_date=until)
    api.set_member(SUPERGROUP, 12, "left")
    api.set_member(SUPERGROUP, 13, "kicked", until_date=until)

    owner = await bot.get_chat_member(SUPERGROUP, OWNER)
    assert isinstance(owner, ChatMemberOwner) and owner.user.id == OWNER and owner.is_anonymous is False

    admin = await bot.get_chat_member(SUPERGROUP, ADMIN)
    assert isinstance(admin, ChatMemberAdministrator)
    assert admin.user.first_name == f"user{ADMIN}" and admin.user.is_bot is False
    assert admin.can_delete_messages is True and admin.can_manage_chat is True
    assert admin.can_restrict_members is False and admin.can_promote_members is False
    assert admin.custom_title == "mod"

    restricted = await bot.get_chat_member(SUPERGROUP, 11)
    assert isinstance(restricted, ChatMemberRestricted)
    assert restricted.is_member is True and restricted.can_send_polls is True
    assert restricted.can_send_messages is False and restricted.can_react_to_messages is False
    assert restricted.until_date == dtm.datetime.fromtimestamp(until, dtm.UTC)

    assert isinstance(await bot.get_chat_member(SUPERGROUP, 12), ChatMemberLeft)
    banned = await bot.get_chat_member(SUPERGROUP, 13)
    assert isinstance(banned, ChatMemberBanned) and banned.until_date.timestamp() == until

    plain = await bot.get_chat_member(SUPERGROUP, 14)  # never set: a member
    assert isinstance(plain, ChatMemberMember) and plain.user.id == 14

    me = await bot.get_chat_member(SUPERGROUP, BOT_ID)  # the bot: a plain member by default
    assert isinstance(me, ChatMemberMember) and me.user.username == "review_mod_bot" and me.user.is_bot
    api.set_bot_rights(SUPERGROUP, can_delete_messages=True)
    me = await bot.get_chat_member(SUPERGROUP, BOT_ID)
    assert isinstance(me, ChatMemberAdministrator)
    assert me.can_delete_messages is True and me.can_restrict_members is False

    assert len(api.calls("getChatMember")) == 8
    assert api.member_status(SUPERGROUP, 11) == "restricted" and api.member_status(SUPERGROUP, 99) == "member"
    with pytest.raises(ValueError):
        api.set_member(SUPERGROUP, 15, "moderator")
    with pytest.raises(ValueError):
        api.set_member(SUPERGROUP, 15, "administrator", can_delete_everything=True)


async def test_get_chat_administrators_lists_owner_admins_and_the_bot(api: FakeBotApi, bot: telegram.Bot):
    api.set_member(SUPERGROUP, ADMIN, "administrator", can_restrict_members=True)
    api.set_member(SUPERGROUP, OWNER, "creator")
    api.set_member(SUPERGROUP, USER, "restricted")
    api.set_member(-1009999999999, 5, "administrator")  # another chat's

    admins = await bot.get_chat_administrators(SUPERGROUP)
    assert [(type(a), a.user.id) for a in admins] == [
        (ChatMemberOwner, OWNER),
        (ChatMemberAdministrator, ADMIN),
    ]

    api.set_bot_rights(SUPERGROUP, can_delete_messages=True, can_restrict_members=True)
    admins = await bot.get_chat_administrators(SUPERGROUP)
    assert [a.user.id for a in admins] == [OWNER, ADMIN, BOT_ID]
    assert admins[2].can_restrict_members and admins[2].can_delete_messages

    await expect_bad_request(
        bot.get_chat_administrators(USER), NO_ADMINISTRATORS_IN_PRIVATE_CHAT, api, "getChatAdministrators"
    )
    assert len(api.calls("getChatAdministrators")) == 2


# -- deleteMessage --------------------------------------------------------------------------------


async def test_delete_message_in_a_supergroup_needs_the_right_for_others_messages(
    api: FakeBotApi, bot: telegram.Bot
):
    message = api.push_message("spam", chat_id=SUPERGROUP, user_id=USER, chat_type="supergroup")
    assert api.messages[(SUPERGROUP, message["message_id"])].from_id == USER

    await expect_bad_request(
        bot.delete_message(SUPERGROUP, 123), MESSAGE_TO_DELETE_NOT_FOUND, api, "deleteMessage"
    )
    await expect_bad_request(  # the bot is a plain member
        bot.delete_message(SUPERGROUP, message["message_id"]), MESSAGE_CANT_BE_DELETED, api, "deleteMessage"
    )
    api.set_bot_rights(SUPERGROUP, can_restrict_members=True)
    await expect_bad_request(  # an administrator without can_delete_messages
        bot.delete_message(SUPERGROUP, message["message_id"]), MESSAGE_CANT_BE_DELETED, api, "deleteMessage"
    )
    assert api.deleted == []

    api.set_bot_rights(SUPERGROUP, can_delete_messages=True)
    assert await bot.delete_message(SUPERGROUP, message["message_id"]) is True
    assert api.deleted == [(SUPERGROUP, message["message_id"])]
    await expect_bad_request(  # already deleted
        bot.delete_message(SUPERGROUP, message["message_id"]),
        MESSAGE_TO_DELETE_NOT_FOUND,
        api,
        "deleteMessage",
    )
    assert len(api.calls("deleteMessage")) == 1 and len(api.calls("deleteMessage", ok_only=False)) == 5


async def test_delete_message_own_messages_old_messages_and_private_chats(api: FakeBotApi, bot: telegram.Bot):
    api.push_message("hello", chat_id=SUPERGROUP, chat_type="supergroup")
    sent = await bot.send_message(SUPERGROUP, "a warning")  # the bot's own: no right needed
    assert await bot.delete_message(SUPERGROUP, sent.message_id) is True

    old = api.push_message(
        "old spam", chat_id=SUPERGROUP, chat_type="supergroup", date=int(time.time()) - 49 * 3600
    )
    assert api.messages[(SUPERGROUP, old["message_id"])].date == old["date"]  # the final date is recorded
    api.set_bot_rights(SUPERGROUP, can_delete_messages=True)
    await expect_bad_request(  # over 48 hours, even with the right
        bot.delete_message(SUPERGROUP, old["message_id"]), MESSAGE_CANT_BE_DELETED, api, "deleteMessage"
    )
    recent = api.push_message(
        "recent", chat_id=SUPERGROUP, chat_type="supergroup", date=int(time.time()) - 47 * 3600
    )
    assert await bot.delete_message(SUPERGROUP, recent["message_id"]) is True

    incoming = api.push_message("hi", chat_id=USER, user_id=USER)  # private: incoming messages are deletable
    assert await bot.delete_message(USER, incoming["message_id"]) is True
    old_private = api.push_message("hi", chat_id=USER, user_id=USER, date=int(time.time()) - 3 * 86400)
    await expect_bad_request(
        bot.delete_message(USER, old_private["message_id"]),
        MESSAGE_CANT_BE_DELETED_FOR_EVERYONE,
        api,
        "deleteMessage",
    )
    assert api.deleted == [
        (SUPERGROUP, sent.message_id),
        (SUPERGROUP, recent["message_id"]),
        (USER, incoming["message_id"]),
    ]


# -- restrictChatMember ---------------------------------------------------------------------------


async def test_restrict_chat_member_errors_in_telegrams_order(api: FakeBotApi, bot: telegram.Bot):
    mute = ChatPermissions.no_permissions()
    api.push_message("hi", chat_id=GROUP, chat_type="group")
    api.set_bot_rights(GROUP, can_restrict_members=True)
    await expect_bad_request(
        bot.restrict_chat_member(GROUP, USER, mute), ONLY_FOR_SUPERGROUPS, api, "restrictChatMember"
    )
    await expect_bad_request(  # a private chat is no supergroup either
        bot.restrict_chat_member(USER, USER, mute), ONLY_FOR_SUPERGROUPS, api, "restrictChatMember"
    )

    api.set_member(SUPERGROUP, OWNER, "creator")
    api.set_member(SUPERGROUP, ADMIN, "administrator", can_delete_messages=True)
    await expect_bad_request(  # the owner is checked before the bot's rights
        bot.restrict_chat_member(SUPERGROUP, OWNER, mute), CANT_REMOVE_CHAT_OWNER, api, "restrictChatMember"
    )
    await expect_bad_request(
        bot.restrict_chat_member(SUPERGROUP, USER, mute),
        NOT_ENOUGH_RIGHTS_TO_RESTRICT,
        api,
        "restrictChatMember",
    )
    await expect_bad_request(  # rights before the administrator check
        bot.restrict_chat_member(SUPERGROUP, ADMIN, mute),
        NOT_ENOUGH_RIGHTS_TO_RESTRICT,
        api,
        "restrictChatMember",
    )
    api.set_bot_rights(SUPERGROUP, can_delete_messages=True)  # an administrator, still without the right
    await expect_bad_request(
        bot.restrict_chat_member(SUPERGROUP, USER, mute),
        NOT_ENOUGH_RIGHTS_TO_RESTRICT,
        api,
        "restrictChatMember",
    )
    api.set_bot_rights(SUPERGROUP, can_restrict_members=True)
    await expect_bad_request(
        bot.restrict_chat_member(SUPERGROUP, ADMIN, mute), USER_IS_ADMINISTRATOR, api, "restrictChatMember"
    )
    await expect_bad_request(
        bot.restrict_chat_member(SUPERGROUP, BOT_ID, mute), CANT_RESTRICT_SELF, api, "restrictChatMember"
    )
    assert api.calls("restrictChatMember") == []
    assert api.member_status(SUPERGROUP, OWNER) == "creator"
    assert api.member_status(SUPERGROUP, ADMIN) == "administrator"
    assert api.member_status(SUPERGROUP, USER) == "member"


async def test_restrict_chat_member_mutes_and_all_permissions_lift_it(api: FakeBotApi, bot: telegram.Bot):
    api.set_bot_rights(SUPERGROUP, can_restrict_members=True)
    until = dtm.datetime.now(dtm.UTC).replace(microsecond=0) + dtm.timedelta(hours=1)

    assert await bot.restrict_chat_member(SUPERGROUP, USER, ChatPermissions.no_permissions(), until) is True
    assert api.member_status(SUPERGROUP, USER) == "restricted"
    muted = await bot.get_chat_member(SUPERGROUP, USER)
    assert isinstance(muted, ChatMemberRestricted) and muted.is_member is True
    assert muted.can_send_messages is False and muted.can_send_photos is False
    assert muted.until_date == until
    params = api.calls("restrictChatMember")[-1].params
    assert params["user_id"] == USER and params["until_date"] == int(until.timestamp())
    assert params["permissions"]["can_send_messages"] is False

    assert await bot.restrict_chat_member(SUPERGROUP, USER, ChatPermissions.all_permissions()) is True
    assert api.member_status(SUPERGROUP, USER) == "member"
    assert isinstance(await bot.get_chat_member(SUPERGROUP, USER), ChatMemberMember)

    # until_date under 30 s away means forever (0); booleans arrive as "true"/"false" form values
    soon = int(time.time()) + 5
    assert await bot.restrict_chat_member(
        SUPERGROUP, USER, ChatPermissions(can_send_polls=True), soon, use_independent_chat_permissions=True
    )
    assert api.calls("restrictChatMember")[-1].params["use_independent_chat_permissions"] == "true"
    member = api.chat_member(SUPERGROUP, USER)
    assert member["until_date"] == 0 and member["can_send_polls"] is True
    assert member["can_send_messages"] is False  # independent: polls imply nothing
    assert await bot.restrict_chat_member(
        SUPERGROUP, USER, ChatPermissions(can_send_polls=True), use_independent_chat_permissions=False
    )
    assert api.chat_member(SUPERGROUP, USER)["can_send_messages"] is True  # polls imply messages

    # a user who left stays out when every permission is given back
    api.set_member(SUPERGROUP, 21, "left")
    assert await bot.restrict_chat_member(SUPERGROUP, 21, ChatPermissions.no_permissions())
    assert api.chat_member(SUPERGROUP, 21)["is_member"] is False
    assert await bot.restrict_chat_member(SUPERGROUP, 21, ChatPermissions.all_permissions())
    assert api.member_status(SUPERGROUP, 21) == "left"
    assert len(api.calls("restrictChatMember")) == 6


# -- banChatMember / unbanChatMember --------------------------------------------------------------


async def test_ban_chat_member_errors_and_success(api: FakeBotApi, bot: telegram.Bot):
    await expect_bad_request(bot.ban_chat_member(USER, USER), CANT_BAN_IN_PRIVATE_CHATS, api, "banChatMember")
    api.set_member(SUPERGROUP, OWNER, "creator")
    api.set_member(SUPERGROUP, ADMIN, "administrator")
    await expect_bad_request(
        bot.ban_chat_member(SUPERGROUP, USER), NOT_ENOUGH_RIGHTS_TO_RESTRICT, api, "banChatMember"
    )
    await expect_bad_request(
        bot.ban_chat_member(SUPERGROUP, OWNER), CANT_REMOVE_CHAT_OWNER, api, "banChatMember"
    )
    api.set_bot_rights(SUPERGROUP, can_restrict_members=True)
    await expect_bad_request(
        bot.ban_chat_member(SUPERGROUP, ADMIN), USER_IS_ADMINISTRATOR, api, "banChatMember"
    )
    await expect_bad_request(
        bot.ban_chat_member(SUPERGROUP, BOT_ID), CANT_RESTRICT_SELF, api, "banChatMember"
    )
    assert api.calls("banChatMember") == []

    until = dtm.datetime.now(dtm.UTC).replace(microsecond=0) + dtm.timedelta(days=1)
    assert await bot.ban_chat_member(SUPERGROUP, USER, until_date=until, revoke_messages=True) is True
    assert api.calls("banChatMember")[-1].params["revoke_messages"] == "true"
    banned = await bot.get_chat_member(SUPERGROUP, USER)
    assert isinstance(banned, ChatMemberBanned) and banned.until_date == until
    assert await bot.ban_chat_member(SUPERGROUP, 22) is True  # forever
    assert (
        api.member_status(SUPERGROUP, 22) == "kicked" and api.chat_member(SUPERGROUP, 22)["until_date"] == 0
    )


async def test_unban_chat_member(api: FakeBotApi, bot: telegram.Bot):
    await expect_bad_request(
        bot.unban_chat_member(GROUP, USER), ONLY_FOR_SUPERGROUPS_AND_CHANNELS, api, "unbanChatMember"
    )
    # only_if_banned and not banned: true at once, nothing changes, no right asked
    assert await bot.unban_chat_member(SUPERGROUP, USER, only_if_banned=True) is True
    assert api.calls("unbanChatMember")[-1].params["only_if_banned"] == "true"
    assert api.member_status(SUPERGROUP, USER) == "member"

    api.set_member(SUPERGROUP, 23, "kicked")
    await expect_bad_request(
        bot.unban_chat_member(SUPERGROUP, 23, only_if_banned=True),
        NOT_ENOUGH_RIGHTS_TO_RESTRICT,
        api,
        "unbanChatMember",
    )
    api.set_bot_rights(SUPERGROUP, can_restrict_members=True)
    assert await bot.unban_chat_member(SUPERGROUP, 23, only_if_banned=True) is True
    assert api.member_status(SUPERGROUP, 23) == "left"
    assert isinstance(await bot.get_chat_member(SUPERGROUP, 23), ChatMemberLeft)
    assert await bot.unban_chat_member(SUPERGROUP, 23) is True  # already left: nothing to do
    assert api.member_status(SUPERGROUP, 23) == "left"

    # without only_if_banned a member is removed from the chat, as Telegram documents
    assert await bot.unban_chat_member(SUPERGROUP, USER) is True
    assert api.member_status(SUPERGROUP, USER) == "left"

    api.set_member(SUPERGROUP, OWNER, "creator")
    api.set_member(SUPERGROUP, ADMIN, "administrator")
    await expect_bad_request(
        bot.unban_chat_member(SUPERGROUP, OWNER), CANT_REMOVE_CHAT_OWNER, api, "unbanChatMember"
    )
    await expect_bad_request(
        bot.unban_chat_member(SUPERGROUP, ADMIN), USER_IS_ADMINISTRATOR, api, "unbanChatMember"
    )
    assert len(api.calls("unbanChatMember")) == 4


# -- my_chat_member -------------------------------------------------------------------------------


async def test_my_chat_member_updates_parse_and_change_the_bots_status(api: FakeBotApi, bot: telegram.Bot):
    added = api.push_my_chat_member(SUPERGROUP, from_user_id=OWNER)
    promoted = api.push_my_chat_member(
        SUPERGROUP,
        old_status="member",
        new_status="administrator",
        from_user_id=OWNER,
        can_delete_messages=True,
        can_restrict_members=True,
    )
    assert api.member_status(SUPERGROUP, BOT_ID) == "administrator"
    removed = api.push_my_chat_member(GROUP, chat_type="group", old_status="member", new_status="kicked")

    updates = await bot.get_updates(timeout=0)
    assert [u.update_id for u in updates] == [added["update_id"], promoted["update_id"], removed["update_id"]]

    first = updates[0].my_chat_member
    assert first.chat.id == SUPERGROUP and first.chat.type == "supergroup" and first.chat.title
    assert first.from_user.id == OWNER
    assert isinstance(first.old_chat_member, ChatMemberLeft) and isinstance(
        first.new_chat_member, ChatMemberMember
    )
    assert first.new_chat_member.user.id == BOT_ID

    second = telegram.Update.de_json(promoted, bot).my_chat_member
    assert second == updates[1].my_chat_member
    assert isinstance(second.old_chat_member, ChatMemberMember)
    new = second.new_chat_member
    assert isinstance(new, ChatMemberAdministrator) and new.can_delete_messages and new.can_restrict_members
    assert (await bot.get_chat_member(SUPERGROUP, BOT_ID)) == new

    third = updates[2].my_chat_member
    assert third.chat.type == "group" and third.from_user.id == USER
    assert isinstance(third.new_chat_member, ChatMemberBanned)
    assert api.member_status(GROUP, BOT_ID) == "kicked"
    assert telegram.Update.de_json(removed, bot).effective_chat.id == GROUP
