"""The public API is deliberate: ``__all__`` is pinned, implementation modules stay private."""

from __future__ import annotations

import subprocess
import sys

import bot_client
import bot_client._exceptions
import bot_client.discord_ext

PUBLIC = [
    "APIError",
    "Attempt",
    "AuthenticationError",
    "BotInfo",
    "ConflictError",
    "DeliveredMessage",
    "Destination",
    "DestinationInfo",
    "ErrorDetail",
    "FlushReport",
    "InteractionInfo",
    "InteractionLike",
    "InteractionRef",
    "Message",
    "NotFoundError",
    "PayloadTooLargeError",
    "ProgressMessage",
    "RelayClient",
    "RelayError",
    "RelayUnavailable",
    "Requester",
    "ResultPage",
    "ResultRecord",
    "ResultSubmission",
    "ResultSummary",
    "RetrievalInfo",
    "RetryPolicy",
    "Run",
    "RunCreate",
    "RunFailure",
    "RunHandle",
    "RunPage",
    "RunProgress",
    "ServerError",
    "Spool",
    "SpoolError",
    "SubmitOutcome",
    "TokenWarning",
    "UnserializableResult",
    "ValidationError",
    "__version__",
    "embed_to_dict",
    "token_warning",
]


def test_all_is_exactly_the_public_api() -> None:
    assert sorted(bot_client.__all__) == sorted(PUBLIC)
    public_names = {
        name
        for name in dir(bot_client)
        if not name.startswith("_") and not isinstance(getattr(bot_client, name), type(sys))
    }
    assert public_names == set(PUBLIC) - {"__version__"}


def test_public_objects_say_they_come_from_the_package() -> None:
    for name in PUBLIC:
        obj = getattr(bot_client, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == "bot_client", name


def test_the_exception_tree_is_drawn_and_rooted_in_relay_error() -> None:
    doc = bot_client._exceptions.__doc__ or ""
    errors = [
        getattr(bot_client, n)
        for n in PUBLIC
        if n.endswith(("Error", "Unavailable")) or n == "UnserializableResult"
    ]
    for error in errors:
        if error is bot_client.ErrorDetail:
            continue
        assert error.__name__ in doc
        assert issubclass(error, bot_client.RelayError)
    assert issubclass(bot_client.ValidationError, bot_client.APIError)
    assert not issubclass(bot_client.RelayUnavailable, bot_client.APIError)
    assert not issubclass(bot_client.UnserializableResult, bot_client.APIError)


def test_discord_extension_api() -> None:
    assert sorted(bot_client.discord_ext.__all__) == ["RelayCog", "can_view", "render_record"]


def test_the_core_client_imports_neither_discord_nor_discord_webhook() -> None:
    code = (
        "import sys, bot_client; "
        "print(sorted(m for m in ('discord', 'discord_webhook') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
