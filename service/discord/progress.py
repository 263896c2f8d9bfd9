"""The messages of a run's conversation: its progress (edited in place while it runs and once at
its end), the hand-off notice that replaces the deferred response before the interaction token
ends, and the notice that a run stopped without a result.

Pure functions over values, like the renderer (``render.py``). Every payload is one embed (plus
the requester's mention in content where one is allowed), within every limit in ``limits.py``
whatever the texts and numbers, with ``allowed_mentions`` ``parse: []``. Payloads carry no
``username``, ``avatar_url`` or thread fields, so the same body serves Execute Webhook and Edit
Webhook Message (of ``@original`` or of a channel message).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from service.discord.embeds import DEFAULT_TITLE, ERROR_COLOR, FAILED_TITLE, SUMMARY_COLOR
from service.discord.limits import LIMITS
from service.discord.render import encodable, retrieve_command
from service.discord.snowflake import is_snowflake
from service.discord.split import clamp

RunState = Literal["running", "handed_off", "finished", "failed", "abandoned"]

BAR_CELLS = 12
BAR_FULL = "▰"
BAR_EMPTY = "▱"
# What a view's texts may take. Their sum with the fixed wording stays far below the description
# (4096) and embed (6000) limits, so no cut is ever needed after the parts are put together.
TITLE_CHARS = LIMITS.title
STAGE_CHARS = 200
NOTE_CHARS = 1000
ERROR_MESSAGE_CHARS = 2000
WHERE_CHARS = 200
FOOTER_CHARS = 300
# Counts this large are shown by their order of magnitude: their digits would not fit, and
# Python refuses to print an int of more than 4300 digits at all.
_BIG = 10**15

DEFAULT_TITLES: dict[RunState, str] = {
    "running": "Analysis running",
    "handed_off": "Analysis running",
    "finished": DEFAULT_TITLE,
    "failed": FAILED_TITLE,
    "abandoned": "Analysis stopped",
}
COLORS: dict[RunState, int] = {
    "running": SUMMARY_COLOR,
    "handed_off": SUMMARY_COLOR,
    "finished": 0x57F287,
    "failed": ERROR_COLOR,
    "abandoned": 0x95A5A6,
}


@dataclass(frozen=True, slots=True)
class ProgressView:
    """What a progress message shows."""

    workflow_id: str
    title: str | None
    stage: str | None
    current: int | None
    total: int | None
    note: str | None
    elapsed_seconds: float  # since the run started
    state: RunState
    error_stage: str | None = None
    error_message: str | None = None


def format_count(n: int) -> str:
    """A count as digits, or as its order of magnitude when it is too large to read."""
    if n < _BIG:
        return str(n)
    return f"~10^{int(math.log10(n))}"


def progress_bar(current: int | None, total: int | None) -> str | None:
    """``▰▰▰▱▱▱… 3/10``: ``current`` clamped to 0..total; None without a usable total."""
    if total is None or total < 1:
        return None
    done = min(max(current or 0, 0), total)
    # Floor, so the bar is full only when the work is.
    filled = done * BAR_CELLS // total
    cells = BAR_FULL * filled + BAR_EMPTY * (BAR_CELLS - filled)
    return f"{cells} {format_count(done)}/{format_count(total)}"


def format_duration(seconds: float) -> str:
    """``45 s``, ``3 min 05 s``, ``1 h 02 min``, ``2 d 03 h``: whole units, rounded down."""
    if math.isnan(seconds) or seconds < 0:
        seconds = 0
    # A run lives at most a day (timeout_seconds <= 86400); anything far beyond is a clock gone
    # wrong, shown capped rather than as a number too long to read.
    whole = int(min(seconds, 999 * 86400))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"


def _text(value: str | None, limit: int) -> str | None:
    """``value`` trimmed and cut to ``limit`` with an ellipsis; None when nothing is left."""
    if value is None:
        return None
    text = clamp(value, limit)[0]
    return text or None


def _title(title: str | None, state: RunState) -> str:
    return _text(title, TITLE_CHARS) or DEFAULT_TITLES[state]


def _footer(workflow_id: str) -> dict[str, str]:
    return {"text": clamp(f"workflow {workflow_id}", FOOTER_CHARS)[0] or "workflow"}


def _progress_lines(view: ProgressView) -> list[str]:
    """The stage, the bar and the note, as far as the view has them."""
    lines: list[str] = []
    stage = _text(view.stage, STAGE_CHARS)
    if stage:
        lines.append(f"**{stage}**")
    bar = progress_bar(view.current, view.total)
    if bar:
        lines.append(bar)
    note = _text(view.note, NOTE_CHARS)
    if note:
        lines.append(note)
    return lines


def _state_lines(view: ProgressView) -> list[str]:
    elapsed = format_duration(view.elapsed_seconds)
    if view.state == "finished":
        return [f"Done after {elapsed}."]
    if view.state == "failed":
        stage = _text(view.error_stage, STAGE_CHARS) or _text(view.stage, STAGE_CHARS)
        where = f" during **{stage}**" if stage else ""
        lines = [f"Failed{where} after {elapsed}."]
        message = _text(view.error_message, ERROR_MESSAGE_CHARS)
        if message:
            lines.append(message)
        return lines
    if view.state == "abandoned":
        lines = [f"Stopped without a result after {elapsed}."]
        stage = _text(view.stage, STAGE_CHARS)
        if stage:
            lines.append(f"Last stage: **{stage}**")
        return lines
    return [*_progress_lines(view), f"Elapsed: {elapsed}"]


def _payload(embed: dict[str, Any], mention: str | None = None) -> dict[str, Any]:
    # The texts come from the client as JSON, which can carry lone surrogates.
    payload: dict[str, Any] = {"embeds": [encodable(embed)]}
    if mention:
        payload = {"content": f"<@{mention}>", **payload}
    payload["allowed_mentions"] = {"parse": [], "users": [mention]} if mention else {"parse": []}
    return payload


def _embed(*, title: str, description: str, color: int, workflow_id: str) -> dict[str, Any]:
    return {
        "title": title,
        # The parts are bounded so this never cuts; the clamp is the guarantee, not the plan.
        "description": clamp(description, LIMITS.description)[0],
        "color": color,
        "footer": _footer(workflow_id),
    }


def progress_payload(view: ProgressView) -> dict[str, Any]:
    """One message body showing the run's progress, or its final state (done; failed with the
    stage and message; stopped without a result) when the view's state is one."""
    return _payload(
        _embed(
            title=_title(view.title, view.state),
            description="\n".join(_state_lines(view)),
            color=COLORS[view.state],
            workflow_id=view.workflow_id,
        )
    )


def handoff_payload(
    *, workflow_id: str, title: str | None, where: str, view: ProgressView | None
) -> dict[str, Any]:
    """The deferred response edited into the hand-off notice: the run goes on, its result will
    come ``where`` ('in this channel', 'in <#123>', 'by direct message'), and how to fetch it."""
    place = _text(where, WHERE_CHARS) or "here"
    lines = [
        "This run is taking a while, and Discord lets this reply be updated for 15 minutes "
        f"only. The run goes on in the background: the result will come {place}.",
        f"To fetch it at any time: `{retrieve_command(workflow_id)}`",
    ]
    if view is not None:
        progress = _progress_lines(view)
        if progress:
            lines += ["", *progress]
    return _payload(
        _embed(
            title=_title(title, "handed_off"),
            description="\n".join(lines),
            color=COLORS["handed_off"],
            workflow_id=workflow_id,
        )
    )


def abandoned_payload(
    *, workflow_id: str, title: str | None, silent_seconds: float, mention_user_id: str | None
) -> dict[str, Any]:
    """A new message telling the requester (mentioned only when given as a snowflake) that the
    run stopped without a result."""
    mention = mention_user_id if mention_user_id and is_snowflake(mention_user_id) else None
    description = (
        f"The run stopped without a result: nothing was heard from it for "
        f"{format_duration(silent_seconds)}. If a result still arrives, it will be delivered. "
        f"To look for it: `{retrieve_command(workflow_id)}`"
    )
    return _payload(
        _embed(
            title=_title(title, "abandoned"),
            description=description,
            color=COLORS["abandoned"],
            workflow_id=workflow_id,
        ),
        mention,
    )
