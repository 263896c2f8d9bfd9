"""Embeds from dicts, discord-webhook's ``DiscordEmbed`` and discord.py's ``Embed``."""

from __future__ import annotations

import discord
import pytest
from discord_webhook import DiscordEmbed

from bot_client import Message, embed_to_dict


def test_a_dict_passes_through_unchanged() -> None:
    embed = {"title": "T", "whatever": None}
    assert embed_to_dict(embed) == embed


def test_a_discord_webhook_embed_becomes_a_plain_dict_without_nones() -> None:
    embed = DiscordEmbed(title="T", color=0x00FF00, timestamp="2026-01-02T03:04:05")
    embed.set_author(name="bot", url="https://example.com")
    embed.set_image(url="https://example.com/a.png")
    embed.set_thumbnail(url="https://example.com/b.png")
    embed.add_embed_field(name="a", value="1", inline=False)
    embed.stray_attribute = "not an embed key"  # type: ignore[attr-defined]
    assert embed_to_dict(embed) == {
        "title": "T",
        "color": 0x00FF00,
        "timestamp": "2026-01-02T03:04:05",
        "author": {"name": "bot", "url": "https://example.com"},
        "image": {"url": "https://example.com/a.png"},
        "thumbnail": {"url": "https://example.com/b.png"},
        "fields": [{"name": "a", "value": "1", "inline": False}],
    }


def test_a_discord_py_embed_is_converted_too() -> None:
    embed = discord.Embed(title="T", description="D", colour=5)
    embed.add_field(name="n", value="v")
    assert embed_to_dict(embed) == {
        "type": "rich",
        "title": "T",
        "description": "D",
        "color": 5,
        "fields": [{"name": "n", "value": "v", "inline": True}],
    }


def test_message_accepts_a_mix_and_refuses_anything_else() -> None:
    message = Message.model_validate({"embeds": [DiscordEmbed(title="x"), {"title": "y"}]})
    assert message.embeds == [{"title": "x"}, {"title": "y"}]
    with pytest.raises(TypeError):
        embed_to_dict(42)
