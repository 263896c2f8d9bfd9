"""What ``/retrieve_results`` reads and shows, as plain functions over values: its time options,
the listing of a user's results and runs, a run on its own, and the autocomplete choices.

No discord.py here: the cog (``bot_client.discord_ext``) does the talking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from bot_client._models import ResultSummary, Run

CONTENT_LIMIT = 2000  # characters in a Discord message
CHOICES_LIMIT = 25  # choices in an autocomplete answer
CHOICE_LIMIT = 100  # characters in a choice's label, and in its value
SEARCH_LIMIT = 100  # characters in the service's ``q``

_AGE = re.compile(r"(\d{1,5})\s*([mhdw])")
_AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

SHOW_ONE = "Show one with `/retrieve_results workflow_id:<id>`."
SINCE_AFTER_UNTIL = "`since` must be before `until`."


class WhenError(ValueError):
    """A ``since`` or ``until`` that is neither a date, a date and time, nor an age."""


def code_text(text: str, limit: int = 128) -> str:
    """User-typed or stored text, safe inside inline code."""
    return text.replace("`", "'")[:limit]


def short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_when(text: str, *, now: datetime, end_of_day: bool = False) -> datetime:
    """``since`` / ``until`` as an aware time: an ISO 8601 date (its midnight, UTC; with
    ``end_of_day``, the next midnight, so ``until`` a date takes that whole day in), an ISO 8601
    date and time (UTC unless it names its offset), or an age before ``now`` (``30m``, ``6h``,
    ``2d``, ``1w``)."""
    value = text.strip()
    age = _AGE.fullmatch(value.lower())
    if age is not None:
        return now - timedelta(**{_AGE_UNITS[age[2]]: int(age[1])})
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        midnight = datetime.combine(day, time(), UTC)
        return midnight + timedelta(days=1) if end_of_day else midnight
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise WhenError(
            f"`{code_text(value, 40)}` is not a time I understand. Use a date (2026-12-01), "
            "a date and time (2026-12-01T14:30, UTC unless it says otherwise) "
            "or an age (30m, 6h, 2d)."
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Query:
    """The listing's options, read: ``url`` a piece of the URL, the times aware."""

    url: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def filtered(self) -> bool:
        return any(v is not None for v in (self.url, self.since, self.until))


def read_options(
    url: str | None, since: str | None, until: str | None, *, now: datetime
) -> Query | str:
    """The listing's options, or what is wrong with them, in words for the user."""
    try:
        start = parse_when(since, now=now) if since else None
        end = parse_when(until, now=now, end_of_day=True) if until else None
    except WhenError as exc:
        return str(exc)
    if start is not None and end is not None and start >= end:
        return SINCE_AFTER_UNTIL
    return Query(url=search_text(url) if url else None, since=start, until=end)


def contains(haystack: str | None, needle: str) -> bool:
    """The service's ``q`` rule on one value: ``needle`` in it, ASCII letters in either case."""
    if haystack is None:
        return False
    return needle.translate(_ASCII_LOWER) in haystack.translate(_ASCII_LOWER)


@dataclass(frozen=True, slots=True)
class Entry:
    """One workflow id of a listing: its result, its run, or both (a run's result shares its
    id)."""

    workflow_id: str
    result: ResultSummary | None = None
    run: Run | None = None

    @property
    def when(self) -> datetime:
        """The newer of its result's arrival and its run's start."""
        times = [x.created_at for x in (self.result, self.run) if x is not None]
        return max(times)

    @property
    def url(self) -> str | None:
        if self.result is not None and self.result.url:
            return self.result.url
        return self.run.url if self.run is not None else None

    def status(self) -> str:
        """``result delivered``, ``run running 3/10``, or both."""
        parts = []
        if self.result is not None:
            parts.append(f"result {self.result.status}")
        if self.run is not None:
            parts.append(f"run {run_state(self.run)}")
        return " · ".join(parts)


def run_state(run: Run) -> str:
    """A run's status and, while it runs, how far it got: ``running analysing 3/10``."""
    state = run.status.replace("_", " ")
    progress = run.progress
    if progress is None or run.status not in ("running", "handed_off"):
        return state
    state += f" {short(progress.stage, 40)}"
    if progress.current is not None:
        state += f" {progress.current}" + (f"/{progress.total}" if progress.total else "")
    return state


def entries(results: list[ResultSummary], runs: list[Run]) -> list[Entry]:
    """Results and runs as one listing, one entry per workflow id, newest first."""
    by_id: dict[str, Entry] = {}
    for result in results:
        by_id[result.workflow_id] = Entry(result.workflow_id, result=result)
    for run in runs:
        found = by_id.get(run.workflow_id)
        by_id[run.workflow_id] = Entry(
            run.workflow_id, result=found.result if found else None, run=run
        )
    return sorted(by_id.values(), key=lambda e: e.when, reverse=True)


def render_listing(listed: list[Entry], *, filtered: bool, limit: int = CONTENT_LIMIT) -> str:
    """The listing as one message of at most ``limit`` characters: as many entries as fit."""
    if not listed:
        if filtered:
            return "You have no results or runs matching those options."
        return "You have no results or runs right now."
    footer = "\n" + SHOW_ONE
    lines = ["Your results and runs, newest first:"]
    for entry in listed:
        line = (
            f"• `{code_text(entry.workflow_id)}` <t:{int(entry.when.timestamp())}:R> "
            f"{entry.status()}"
        )
        if entry.url:
            line += f" <{short(entry.url, 200)}>"
        if len("\n".join([*lines, line])) + len(footer) > limit:
            break
        lines.append(line)
    return "\n".join(lines) + footer


def render_run(run: Run) -> str:
    """A run whose result is not there: what it is, how far it got."""
    lines = [f"**Run `{code_text(run.workflow_id)}`** ({run_state(run)})"]
    if run.title:
        lines.append(f"Title: {short(run.title, 200)}")
    if run.url:
        lines.append(f"Source: <{short(run.url, 300)}>")
    if run.progress is not None and run.progress.note:
        lines.append(f"Note: {short(run.progress.note, 300)}")
    lines.append(f"Started: <t:{int(run.created_at.timestamp())}:f>")
    if run.error is not None:
        lines.append(f"Failed at {short(run.error.stage, 100)}: {short(run.error.message, 500)}")
    elif run.status in ("running", "handed_off"):
        lines.append("Its result is not in yet: ask again when it has finished.")
    return "\n".join(lines)


def search_text(typed: str) -> str | None:
    """What the user typed, as the service's ``q``: None for nothing, at most its length."""
    typed = typed.strip()
    return typed[:SEARCH_LIMIT] or None


def choices(listed: list[Entry], typed: str) -> list[tuple[str, str]]:
    """Autocomplete choices (label, value) for ``workflow_id``, newest first: entries whose id
    or URL holds what was typed, at most 25, labels and values within Discord's 100 characters.
    An id longer than a choice's value may be cannot be offered: the user types it out."""
    wanted = typed.strip()
    found: list[tuple[str, str]] = []
    for entry in listed:
        if len(entry.workflow_id) > CHOICE_LIMIT:
            continue
        if wanted and not (contains(entry.workflow_id, wanted) or contains(entry.url, wanted)):
            continue
        found.append(
            (short(f"{entry.workflow_id} · {entry.status()}", CHOICE_LIMIT), entry.workflow_id)
        )
        if len(found) == CHOICES_LIMIT:
            break
    return found
