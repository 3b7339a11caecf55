"""The escrow invariant under random sequences of actions (hypothesis stateful test, real anvil).

Whatever owners, trainers, the aggregator and strangers do, in whatever order and at whatever
time (trainers commit and reveal in separate steps; some never reveal and are slashed, some reveal
what their seal does not open to): the market holds exactly what was deposited minus what was
withdrawn, and once every project is driven to an end (cancel or abandon, the paths anyone can
take) everyone can withdraw and the amounts paid out for each project equal what it escrowed,
leaving nothing stuck.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from marketplace.adapters.chain.errors import ContractRevert
from marketplace.adapters.chain.market import MarketClient, ProjectStatus
from tests.market_fixtures import Actors, commit, commitment_for, reveal_update

N_TRAINERS = 4
GWEI = 10**9
EMPTY = b"\0" * 32


def cid_of(trainer: int) -> str:
    return f"bafkreiu{trainer}"


def commitment_of(pid: int, round_: int, trainer: int) -> bytes:
    return commitment_for(pid, round_, str(trainer))


def test_escrow_is_conserved_under_random_protocol_runs(actors: Actors) -> None:
    chain = actors.chain
    trainers = actors.trainers[:N_TRAINERS]
    parties: list[MarketClient] = [actors.owner, actors.aggregator, *trainers, actors.stranger]
    market_address = actors.admin.market.address

    class EscrowMachine(RuleBasedStateMachine):
        projects = Bundle("projects")

        @initialize()
        def start(self) -> None:
            self.snapshot = chain.snapshot()
            self.base_balance = chain.balance(market_address)
            self.escrowed: dict[int, int] = {}
            self.withdrawn: dict[int, int] = {}

        def attempt(self, fn, *args):  # type: ignore[no-untyped-def]
            """Run an action; a revert is an allowed outcome of a random action."""
            try:
                return fn(*args)
            except ContractRevert:
                return None

        @rule(
            target=projects,
            rounds=st.integers(1, 3),
            max_trainers=st.integers(1, N_TRAINERS),
            budget=st.integers(1, 10**6),
            fee=st.integers(0, 10**5),
            stake=st.integers(0, 10**5),
            slash=st.sampled_from([0, 2_500, 10_000]),
            joiners=st.integers(0, N_TRAINERS),
        )
        def create(
            self, rounds: int, max_trainers: int, budget: int, fee: int, stake: int, slash: int, joiners: int
        ) -> int:
            """A new project, which the first ``joiners`` trainers join at once (a full project starts)."""
            cfg = actors.config(
                rounds=rounds,
                min_trainers=1,
                max_trainers=max_trainers,
                reward_budget=budget * GWEI,
                aggregator_fee=fee * GWEI,
                stake=stake * GWEI,
                slash_bps=slash,
            )
            pid = actors.owner.create_project(cfg)
            self.escrowed[pid] = cfg.escrow
            self.withdrawn[pid] = 0
            self.join(pid, list(range(min(joiners, max_trainers))))
            return pid

        @rule(pid=projects, who=st.lists(st.integers(0, N_TRAINERS - 1), min_size=1, max_size=N_TRAINERS))
        def join(self, pid: int, who: list[int]) -> None:
            """The ``who`` trainers try to join, one after another."""
            for i in who:
                if self.attempt(trainers[i].join, pid) is not None:
                    self.escrowed[pid] += actors.owner.get_project(pid).stake

        @rule(pid=projects, by_owner=st.booleans())
        def start_training(self, pid: int, by_owner: bool) -> None:
            self.attempt((actors.owner if by_owner else actors.stranger).start_training, pid)

        @rule(pid=projects, by_owner=st.booleans())
        def cancel(self, pid: int, by_owner: bool) -> None:
            self.attempt((actors.owner if by_owner else actors.stranger).cancel, pid)

        def members(self, pid: int, picks: list[int], committed: bool = False) -> list[int]:
            """The trainers (indices into ``trainers``) that ``picks`` choose among the project's members
            (among those that committed in the open round, if ``committed``)."""
            joined = set(actors.owner.trainers(pid))
            round_ = actors.owner.get_project(pid).current_round

            def eligible(t: MarketClient) -> bool:
                return not committed or actors.owner.committed_seal(pid, round_, t.address) != EMPTY

            pool = [i for i, t in enumerate(trainers) if t.address in joined and eligible(t)]
            return list(dict.fromkeys(pool[p % len(pool)] for p in picks)) if pool else []

        @rule(pid=projects, picks=st.lists(st.integers(0, N_TRAINERS - 1), max_size=N_TRAINERS))
        def commit_seals(self, pid: int, picks: list[int]) -> None:
            round_ = actors.owner.get_project(pid).current_round
            for i in self.members(pid, picks):
                self.attempt(commit, trainers[i], pid, round_, cid_of(i), commitment_of(pid, round_, i))

        @rule(pid=projects, picks=st.lists(st.integers(0, N_TRAINERS - 1), max_size=N_TRAINERS), opens=st.booleans())
        def reveal(self, pid: int, picks: list[int], opens: bool) -> None:
            """Reveals what was committed (``opens``), or something the seal does not open to."""
            round_ = actors.owner.get_project(pid).current_round
            for i in self.members(pid, picks, committed=True):
                cid = cid_of(i) if opens else cid_of(i) + "x"
                self.attempt(reveal_update, trainers[i], pid, round_, cid, commitment_of(pid, round_, i))

        @rule(
            pid=projects,
            scores=st.lists(st.integers(0, 10**9), min_size=N_TRAINERS, max_size=N_TRAINERS),
            flags=st.lists(st.booleans(), min_size=N_TRAINERS, max_size=N_TRAINERS),
        )
        def finalize(self, pid: int, scores: list[int], flags: list[bool]) -> None:
            project = actors.owner.get_project(pid)
            if project.status is not ProjectStatus.TRAINING:
                return
            round_ = project.current_round
            members = actors.owner.trainers(pid)
            submitted = [actors.owner.commitment(pid, round_, m) != EMPTY for m in members]
            n = len(members)
            s = [sc if ok else 0 for sc, ok in zip(scores[:n], submitted, strict=True)]
            f = [fl and ok for fl, ok in zip(flags[:n], submitted, strict=True)]
            self.attempt(actors.aggregator.finalize_round, pid, round_, actors.result(pid, round_, s, f))

        @rule(seconds=st.sampled_from([30, 650, 1_300, 4_000]))
        def warp(self, seconds: int) -> None:
            chain.increase_time(seconds)

        @rule(pid=projects)
        def abandon(self, pid: int) -> None:
            self.attempt(actors.stranger.abandon, pid)

        @rule(pid=projects, who=st.integers(0, len(parties) - 1))
        def withdraw(self, pid: int, who: int) -> None:
            amount = self.attempt(parties[who].withdraw, pid)
            if amount is not None:
                self.withdrawn[pid] += amount

        @invariant()
        def market_holds_deposits_minus_withdrawals(self) -> None:
            if not hasattr(self, "escrowed"):
                return
            held = chain.balance(market_address) - self.base_balance
            assert held == sum(self.escrowed.values()) - sum(self.withdrawn.values())

        def teardown(self) -> None:
            if not hasattr(self, "escrowed"):
                return
            try:
                chain.increase_time(10_000)
                for pid in self.escrowed:
                    status = actors.owner.get_project(pid).status
                    if status is ProjectStatus.OPEN:
                        actors.owner.cancel(pid)
                    elif status is ProjectStatus.TRAINING:
                        actors.stranger.abandon(pid)
                    owed = sum(actors.owner.withdrawable(pid, p.address) for p in parties)
                    assert owed + self.withdrawn[pid] == self.escrowed[pid], f"project {pid} does not add up"
                    for party in parties:
                        if actors.owner.withdrawable(pid, party.address) > 0:
                            self.withdrawn[pid] += party.withdraw(pid)
                    assert self.withdrawn[pid] == self.escrowed[pid]
                assert chain.balance(market_address) == self.base_balance, "ETH stuck in the market"
            finally:
                chain.revert(self.snapshot)

    run_state_machine_as_test(
        EscrowMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
