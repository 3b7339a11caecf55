"""Where a training project's open round stands: its phase under commit-reveal, from the chain's clock,
the round's deadlines (``MarketLens.roundDeadlines``) and how many trainers committed and revealed.

A round has three phases, then an overdue state:

* ``commit``: trainers commit sealed submissions (``commitUpdate``) until the commit deadline, or until
  every trainer committed (and the owner's reference, in a project that expects one: the round then waits for
  it, :attr:`RoundPhase.awaits_reference`); nothing of the round is public yet. Exactly while ``now < reveal_opens``.
* ``reveal``: the commit phase has closed; trainers that committed reveal their update's CID and
  commitment (``revealUpdate``) until the reveal deadline, while some reveal is outstanding.
* ``aggregation``: every committed trainer revealed (or the reveal deadline passed); the aggregator may
  finalize until the aggregation deadline. A trainer that committed and did not reveal by then is
  treated as flagged (``RevealMissed``, slashed).
* ``overdue``: the aggregation deadline passed without a finalization: anyone may abandon the project.

These are the contract's own tests (``commitUpdate``, ``_checkRevealWindow``, ``_checkTiming``,
``abandon``), so what is shown is what the chain would accept now. Pure functions: used by the web
app's project page and API and by ``marketplace project show``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from marketplace.adapters.chain.market import RoundDeadlines

PhaseName = Literal["commit", "reveal", "aggregation", "overdue"]


@dataclass(frozen=True)
class RoundPhase:
    """The open round's phase at ``now`` (chain time, unix seconds) and what it was derived from."""

    name: PhaseName
    now: int
    deadlines: RoundDeadlines
    trainers: int  # members of the project
    commits: int  # commits in the open round
    reveals: int  # reveals in the open round
    awaits_reference: bool = False  # the project expects the owner's reference and it is not committed yet


def round_phase(
    now: int, deadlines: RoundDeadlines, trainers: int, commits: int, reveals: int, awaits_reference: bool = False
) -> RoundPhase:
    """The phase of the open round at chain time ``now`` (see the module docstring); ``awaits_reference``:
    :meth:`marketplace.adapters.chain.market.MarketClient.awaits_reference`."""
    name: PhaseName
    if now > deadlines.aggregation:
        name = "overdue"
    elif now < deadlines.reveal_opens:
        name = "commit"
    elif reveals < commits and now <= deadlines.reveal:
        name = "reveal"
    else:
        name = "aggregation"
    return RoundPhase(name, now, deadlines, trainers, commits, reveals, awaits_reference and name == "commit")


def describe(phase: RoundPhase, when: Callable[[int], str]) -> str:
    """One sentence for people: the phase, until when, and who is being waited for (``when`` formats a time)."""
    d = phase.deadlines
    if phase.name == "commit" and phase.awaits_reference:
        return (
            f"Commit phase: trainers commit sealed updates ({phase.commits} of {phase.trainers} so far) and the "
            f"round waits for the owner's reference: the phase closes once all {phase.trainers} trainers and the "
            f"owner have committed, or at {when(d.commit)}; nothing is revealed yet"
        )
    if phase.name == "commit":
        return (
            f"Commit phase: trainers commit sealed updates until {when(d.commit)} or until all {phase.trainers} "
            f"have committed ({phase.commits} of {phase.trainers} so far); nothing is revealed yet"
        )
    if phase.name == "reveal":
        return (
            f"Reveal phase: the trainers that committed reveal their update until {when(d.reveal)} "
            f"({phase.reveals} of {phase.commits} revealed); a trainer that does not reveal is slashed as flagged"
        )
    if phase.name == "aggregation":
        missing = phase.commits - phase.reveals
        missed = f"; {missing} committed trainer(s) did not reveal and will be slashed as flagged" if missing else ""
        return (
            f"Aggregation: {phase.reveals} update(s) revealed; the aggregator may finalize the round until "
            f"{when(d.aggregation)}{missed}"
        )
    return f"Overdue: the aggregator missed the aggregation deadline {when(d.aggregation)}; anyone may abandon"
