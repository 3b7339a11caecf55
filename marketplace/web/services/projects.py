"""Read model of projects: the list (filtered, sorted), one project, and its detail (trainers, rounds
with each trainer's commit, reveal (or missed reveal), score, flag, rejection and its dispute, a stale challenge
(:mod:`~marketplace.web.services.stale`), the reason for a flag in words, reward and slash, and everyone's payout),
all from the event index; plus, for a
training project, the open round's commit-reveal phase, deadlines and announced rejections
(:mod:`~marketplace.web.services.round_phase`), the aggregator's track record
(:mod:`~marketplace.web.services.aggregators`) and what the project's reliability bar asks of a trainer
(:mod:`~marketplace.web.services.track_records`): these three from the chain's views, as cached by
:mod:`~marketplace.web.services.chain_reads`.

Payouts mirror the contract's ``_owed``: what each account is entitled to once the project is
settled (a stale trainer's stake less what its stale challenges refunded their challengers), and what it withdrew so
far.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from marketplace.protocol.model_card import ModelCard
from marketplace.web.filters import when
from marketplace.web.indexer import CardState, Dispute
from marketplace.web.schemas import (
    Member,
    OpenRound,
    OpenRoundTrainer,
    Payout,
    ProjectDetail,
    ProjectSummary,
    ReliabilityBar,
    RoundView,
    StaleShown,
    TrainerEntry,
    eth,
    to_bps,
)
from marketplace.web.services.aggregators import aggregator_record
from marketplace.web.services.bond_ledger import Ledger, announced_trainers, ledgers, round_bonds, trainer_bond
from marketplace.web.services.context import MarketContext
from marketplace.web.services.disputes import describe_dispute, flag_reason
from marketplace.web.services.errors import NotFound
from marketplace.web.services.round_phase import describe, round_phase
from marketplace.web.services.stale import project_roles, stale_shown
from marketplace.web.services.track_records import project_bar

#: Sort orders of the project list: name -> (key, descending).
SORT_KEYS: dict[str, tuple[Callable[[ProjectSummary], Any], bool]] = {
    "newest": (lambda p: p.project_id, True),
    "oldest": (lambda p: p.project_id, False),
    "budget": (lambda p: int(p.reward_budget), True),
    "rounds": (lambda p: p.rounds_done, True),
    "trainers": (lambda p: p.trainer_count, True),
    "reliability": (lambda p: p.min_reliability_bps, True),
}
STATUSES = ("open", "training", "finished", "cancelled")


def summary(row: dict[str, Any]) -> ProjectSummary:
    """A project row of the index as the API shows it."""
    return ProjectSummary(
        **{k: row[k] for k in ProjectSummary.model_fields if k in row},
        reward_budget_eth=eth(row["reward_budget"]),
        aggregator_fee_eth=eth(row["aggregator_fee"]),
        stake_eth=eth(row["stake"]),
        created_block=row["block"],
        created_tx=row["tx_hash"],
    )


def payouts(
    project: ProjectSummary,
    trainers: list[Member],
    earned: dict[str, int],
    slashed: dict[str, int],
    refunded: dict[str, int] | None = None,
) -> list[Payout]:
    """Everyone's entitlement, mirroring the contract's ``_owed`` (before any withdrawal): a trainer's stake less
    its slashes and what its stale challenges ``refunded`` their challengers (credited to them apart, as bonds)."""
    refunded = refunded or {}
    entitled: dict[str, int] = defaultdict(int)
    roles: dict[str, list[str]] = defaultdict(list)
    total_earned = sum(earned.values())
    aggregator_earned = int(project.aggregator_fee) * project.rounds_done // project.rounds
    entitled[project.owner] += (
        int(project.reward_budget) - total_earned + int(project.aggregator_fee) - aggregator_earned
        + sum(slashed.values())
    )  # fmt: skip
    roles[project.owner].append("owner")
    entitled[project.aggregator] += aggregator_earned
    roles[project.aggregator].append("aggregator")
    for m in trainers:
        entitled[m.trainer] += int(m.stake) - slashed[m.trainer] - refunded.get(m.trainer, 0) + earned[m.trainer]
        roles[m.trainer].append("trainer")
    return [
        Payout(account=a, roles=roles[a], entitled=str(v), entitled_eth=eth(v), withdrawn="0", withdrawn_eth="0")
        for a, v in entitled.items()
    ]


class ProjectService:
    """Projects of one deployment, as the pages and the API show them."""

    def __init__(self, context: MarketContext) -> None:
        self.context = context
        self.indexer = context.indexer

    def projects(
        self,
        status: str | None = None,
        model: str | None = None,
        min_budget: Decimal | int | None = None,
        max_reliability_bps: Decimal | int | None = None,
        query: str | None = None,
        sort: str = "newest",
    ) -> list[ProjectSummary]:
        """Every project, filtered (status, model, a budget of at least ``min_budget`` wei, a reliability bar of at
        most ``max_reliability_bps``, owner) and sorted."""
        items = [summary(r) for r in self.indexer.projects()]
        if status:
            items = [p for p in items if p.status == status]
        if model:
            items = [p for p in items if p.model_name == model]
        if min_budget is not None:
            items = [p for p in items if int(p.reward_budget) >= min_budget]
        if max_reliability_bps is not None:
            items = [p for p in items if p.min_reliability_bps <= max_reliability_bps]
        if query:
            q = query.strip().lower()
            items = [p for p in items if q in p.owner.lower() or q == str(p.project_id) or q in p.model_name.lower()]
        key, reverse = SORT_KEYS.get(sort, SORT_KEYS["newest"])
        return sorted(items, key=key, reverse=reverse)

    def project(self, project_id: int) -> ProjectSummary:
        """One project; :class:`NotFound` if the index does not know it."""
        row = self.indexer.project(project_id)
        if row is None:
            raise NotFound(f"project {project_id} does not exist on {self.context.network}")
        return summary(row)

    def model_card(self, project_id: int) -> tuple[CardState, ModelCard | None]:
        """The model card of a project's initial weights and where reading it stands (the index's answer: see
        :attr:`ProjectDetail.model_card_state`)."""
        return self.indexer.model_card(project_id)

    def reliability_bar(self, project: ProjectSummary) -> ReliabilityBar | None:
        """What ``project``'s reliability bar asks of a trainer, its required record live from the market; None
        without a bar."""
        return project_bar(
            self.context.reads, project.project_id, project.min_reliability_bps, int(project.reward_budget),
            project.min_trainers,
        )  # fmt: skip

    def detail(self, project_id: int) -> ProjectDetail:
        """A project with its trainers, rounds (scores, flags, rewards), payouts (withdrawals not filled in) and
        model card (as the index read it from the initial weights)."""
        project = self.project(project_id)
        members = self.indexer.trainers(project_id)
        rounds = self.indexer.rounds(project_id)
        slashes = self.indexer.slashes(project_id)
        lifecycle = self.indexer.lifecycle(project_id)
        slashed_by: dict[tuple[int, str], int] = defaultdict(int)
        for s in slashes:
            slashed_by[(s["round"], s["trainer"])] += int(s["amount"])
        rejections = self.indexer.rejections(project_id)
        missed = self.indexer.reveals_missed(project_id)
        disputes = self.indexer.disputes(project_id)
        bonds = ledgers(self.indexer.bonds(project_id), announced_trainers(disputes))
        stale = self.indexer.stale_challenges(project_id)
        shown = self._stale_views(project, members, stale)
        round_views = [
            self._round_view(
                r, members, slashed_by, rejections.get(r["round"], set()), missed.get(r["round"], set()),
                disputes.get(r["round"], {}), bonds.get(r["round"]), shown.get(r["round"], {}),
            )
            for r in rounds
        ]  # fmt: skip
        refunded: dict[str, int] = defaultdict(int)
        for challenged in stale.values():
            for trainer, row in challenged.items():
                refunded[trainer] += int(row["award"])

        earned: dict[str, int] = defaultdict(int)
        flagged: dict[str, int] = defaultdict(int)
        stale_rounds: dict[str, int] = defaultdict(int)
        for view in round_views:
            for entry in view.trainers:
                earned[entry.trainer] += int(entry.reward)
                flagged[entry.trainer] += int(entry.flagged)
                stale_rounds[entry.trainer] += int(entry.stale is not None)
        abandoned = next((e["data"] for e in lifecycle if e["kind"] == "abandoned"), None)
        if abandoned is not None:
            for sub in self.indexer.submissions(project_id, abandoned["round"]):
                earned[sub["trainer"]] += int(abandoned["reward_each"])
        slashed_total: dict[str, int] = defaultdict(int)
        for (_, trainer), amount in slashed_by.items():
            slashed_total[trainer] += amount

        trainers = [
            Member(
                index=m["idx"], trainer=m["trainer"], stake=m["stake"], stake_eth=eth(m["stake"]),
                joined_block=m["block"], earned=str(earned[m["trainer"]]), earned_eth=eth(earned[m["trainer"]]),
                slashed=str(slashed_total[m["trainer"]]), slashed_eth=eth(slashed_total[m["trainer"]]),
                flagged_rounds=flagged[m["trainer"]], stale_rounds=stale_rounds[m["trainer"]],
            )
            for m in members
        ]  # fmt: skip
        escrowed = int(project.reward_budget) + int(project.aggregator_fee) + sum(int(m.stake) for m in trainers)
        current = project.rounds_done
        training = project.status == "training"
        pending = len(self.indexer.submissions(project_id, current)) if training else 0
        commits = len(self.indexer.commits(project_id, current)) if training else 0
        card_state, card = self.indexer.model_card(project_id)
        held = sum(b.held for b in bonds.values())
        return ProjectDetail(
            project=project,
            trainers=trainers,
            rounds=round_views,
            payouts=payouts(project, trainers, earned, slashed_total, refunded),
            escrowed=str(escrowed),
            escrowed_eth=eth(escrowed),
            settled=project.status in ("finished", "cancelled"),
            pending_submissions=pending,
            pending_commits=commits,
            model_card=card,
            model_card_state=card_state,
            bonds=[round_bonds(b) for b in bonds.values()],
            bonds_held=str(held),
            bonds_held_eth=eth(held),
        )

    def project_detail(self, project_id: int) -> ProjectDetail:
        """:meth:`detail` with what each account withdrew so far (``Withdrawn`` events), the aggregator's track
        record (live), the reliability bar (:meth:`reliability_bar`, live) and, for a training project, the open
        round (:meth:`open_round`)."""
        detail = self.detail(project_id)
        withdrawn: dict[str, int] = defaultdict(int)
        for w in self.indexer.withdrawals(project_id):
            withdrawn[w["account"]] += int(w["amount"])
        for p in detail.payouts:
            p.withdrawn = str(withdrawn[p.account])
            p.withdrawn_eth = eth(withdrawn[p.account])
        if detail.project.status == "training":
            detail.open_round = self.open_round(detail)
        detail.aggregator_record = aggregator_record(self.context.reads, detail.project.aggregator)
        detail.reliability_bar = self.reliability_bar(detail.project)
        return detail

    def open_round(self, detail: ProjectDetail) -> OpenRound:
        """The open round of a training project: its phase at the chain's time and the deadlines (``roundDeadlines``
        and the time of the block the index is synced to: :meth:`MarketContext.now`), who committed (in arrival
        order), who revealed, and whose rejection the aggregator announced and where its dispute stands (index)."""
        project = detail.project
        pid, round_ = project.project_id, project.rounds_done
        deadlines = self.context.reads.round_deadlines(pid)
        now = self.context.now()
        commits = {c["trainer"]: int(c["arrival"]) for c in self.indexer.commits(pid, round_)}
        revealed = {s["trainer"] for s in self.indexer.submissions(pid, round_)}
        all_disputes = self.indexer.disputes(pid)
        disputes = all_disputes.get(round_, {})
        bonds = ledgers(self.indexer.bonds(pid), announced_trainers(all_disputes)).get(round_)
        members = self.indexer.trainers(pid)
        stale = self._stale_views(project, members, self.indexer.stale_challenges(pid)).get(round_, {})
        awaits = self.context.reads.awaits_reference(pid)
        phase = round_phase(now, deadlines, len(detail.trainers), len(commits), len(revealed), awaits)
        trainers = []
        for m in detail.trainers:
            arrival = commits.get(m.trainer)
            if m.trainer in revealed:
                state = f"revealed (commit #{arrival})"
            elif arrival is not None:
                late = phase.name in ("aggregation", "overdue")
                state = f"committed #{arrival}, " + ("did not reveal in time" if late else "waiting to reveal")
            else:
                state = "waiting to commit" if phase.name == "commit" else "did not commit (missed this round)"
            dispute = disputes.get(m.trainer)
            shown = stale.get(m.trainer)
            if shown is not None:
                state += f"; {shown.summary}"
            elif dispute is not None:
                state += f"; {describe_dispute(dispute, when, now)}"
            bond = trainer_bond(bonds, m.trainer)
            trainers.append(
                OpenRoundTrainer(
                    index=m.index, trainer=m.trainer, committed=arrival is not None, arrival=arrival,
                    revealed=m.trainer in revealed, state=state, dispute=dispute.state if dispute else None, bond=bond,
                    stale=shown,
                )
            )  # fmt: skip
        deadline = max((d.deadline for d in disputes.values() if d.deadline is not None), default=None)
        return OpenRound(
            round=round_, phase=phase.name, summary=describe(phase, when), now=now, commit_deadline=deadlines.commit,
            reveal_opens=deadlines.reveal_opens, reveal_deadline=deadlines.reveal,
            aggregation_deadline=deadlines.aggregation, commits=len(commits), reveals=len(revealed),
            awaits_reference=phase.awaits_reference, dispute_deadline=deadline, trainers=trainers,
        )  # fmt: skip

    @staticmethod
    def _stale_views(
        project: ProjectSummary, members: list[dict[str, Any]], stale: dict[int, dict[str, dict[str, Any]]]
    ) -> dict[int, dict[str, StaleShown]]:
        """Round -> trainer -> its stale challenge as the API shows it (:func:`stale_shown`)."""
        by_index = {m["idx"]: m["trainer"] for m in members}
        roles = project_roles(project.owner, project.aggregator)
        return {
            round_: {trainer: stale_shown(row, trainer, by_index, roles) for trainer, row in challenged.items()}
            for round_, challenged in stale.items()
        }

    def _round_view(
        self,
        row: dict[str, Any],
        members: list[dict[str, Any]],
        slashed_by: dict[tuple[int, str], int],
        rejected: set[str],
        reveal_missed: set[str],
        disputes: dict[str, Dispute],
        bonds: Ledger | None = None,
        stale: dict[str, StaleShown] | None = None,
    ) -> RoundView:
        subs = {s["trainer"]: s for s in self.indexer.submissions(row["project_id"], row["round"])}
        arrivals = {c["trainer"]: int(c["arrival"]) for c in self.indexer.commits(row["project_id"], row["round"])}
        scores, flags, rewards = row["scores"], row["flags"], row["rewards"]
        total = sum(s for s, f in zip(scores, flags, strict=False) if not f)
        claimed = set(row.get("admitted") or [])  # the proof document's word: only unpaid members can be admitted
        # Its word too: shown only for members paid on their own update (an unpaid update kept out is simply not in
        # the model, and a member paid on the row it published in a dispute has no update in it either way), and only
        # in a round whose owner revealed its reference (``referenceOf``): without one nothing is screened, and a
        # document that names someone there is false on the chain's own record (read only when it names someone).
        kept_out = set(row.get("screened") or [])
        if kept_out and not self.context.reads.reference_revealed(row["project_id"], row["round"]):
            kept_out = set()
        stale = stale or {}
        entries = []
        for m in members:
            i = m["idx"]
            if i >= len(scores):
                continue
            sub = subs.get(m["trainer"])
            # A trainer that committed and did not reveal is an empty slot to the proof (flag false) but
            # treated as flagged by the market: slashed, recorded flagged in the registry.
            flagged = flags[i] or m["trainer"] in reveal_missed
            dispute = disputes.get(m["trainer"])
            disputed = dispute is not None and dispute.state == "disputed"
            paid_update = not flagged and scores[i] > 0 and sub is not None and not disputed
            shown = stale.get(m["trainer"])
            reason = flag_reason(
                flagged, m["trainer"] in reveal_missed, dispute, when, row["reasons"].get(m["trainer"]),
                shown.summary if shown else None,
            )  # fmt: skip
            entries.append(
                TrainerEntry(
                    index=i, trainer=m["trainer"], committed=m["trainer"] in arrivals,
                    arrival=arrivals.get(m["trainer"]), submitted=sub is not None,
                    reveal_missed=m["trainer"] in reveal_missed, update_cid=sub["cid"] if sub else None,
                    commitment=sub["commitment"] if sub else None,
                    score=str(scores[i]), share_bps=0 if flagged or total == 0 else to_bps(scores[i] / total),
                    flagged=flagged, rejected=m["trainer"] in rejected, reward=str(rewards[i]),
                    reward_eth=eth(rewards[i]),
                    slashed=str(slashed_by.get((row["round"], m["trainer"]), 0)),
                    slashed_eth=eth(slashed_by.get((row["round"], m["trainer"]), 0)),
                    dispute=dispute.state if dispute else None, dispute_deadline=dispute.deadline if dispute else None,
                    reason=reason, admitted=m["trainer"] in claimed and sub is not None and (flagged or scores[i] == 0),
                    screened=m["trainer"] in kept_out and paid_update,
                    bond=trainer_bond(bonds, m["trainer"]), stale=shown,
                )
            )  # fmt: skip
        return RoundView(
            round=row["round"], model_cid=row["model_cid"], proof_cid=row["proof_cid"], accuracy=row["accuracy"],
            block=row["block"], tx_hash=row["tx_hash"], trainers=entries,
            admitted=[e.trainer for e in entries if e.admitted], screened=[e.trainer for e in entries if e.screened],
            bonds=round_bonds(bonds) if bonds else None, stale=[e.trainer for e in entries if e.stale],
        )  # fmt: skip
