"""The bot's side of result-relay: hand finished results to the service, never lose them.

    from bot_client import RelayClient

    async with RelayClient(RELAY_URL, api_key=KEY, spool_dir="data/relay-spool") as relay:
        await relay.hand_off(interaction, workflow_id=..., results=..., destination=WEBHOOK_URL)

        # or, for a long command whose progress the user should see:
        async with relay.run(interaction, workflow_id=..., title="Analysis") as run:
            await run.progress("download", 1, 3)
            await run.finish(results)

The discord.py cog (``/retrieve_results``) lives in ``bot_client.discord_ext`` (extra
``discord``); this package itself needs only httpx and pydantic.
"""

from bot_client._client import RelayClient, SubmitOutcome
from bot_client._embeds import embed_to_dict
from bot_client._exceptions import (
    APIError,
    AuthenticationError,
    ConflictError,
    ErrorDetail,
    NotFoundError,
    PayloadTooLargeError,
    RelayError,
    RelayUnavailable,
    ServerError,
    SpoolError,
    UnserializableResult,
    ValidationError,
)
from bot_client._interaction import (
    InteractionLike,
    InteractionRef,
    Requester,
    TokenWarning,
    token_warning,
)
from bot_client._models import (
    Attempt,
    BotInfo,
    DeliveredMessage,
    Destination,
    DestinationInfo,
    InteractionInfo,
    Message,
    ProgressMessage,
    ResultPage,
    ResultRecord,
    ResultSubmission,
    ResultSummary,
    RetrievalInfo,
    Run,
    RunCreate,
    RunFailure,
    RunPage,
    RunProgress,
)
from bot_client._retry import RetryPolicy
from bot_client._run import RunHandle
from bot_client._spool import FlushReport, Spool

__version__ = "0.1.0"

__all__ = [
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

# httpx does the same: public names report the public module, not the private one.
for _name in __all__:
    if not _name.startswith("__"):
        _obj = globals()[_name]
        if getattr(_obj, "__module__", "").startswith("bot_client._"):
            _obj.__module__ = "bot_client"
del _name, _obj
