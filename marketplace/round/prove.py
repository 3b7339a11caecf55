"""Provers: produce the proof a project's verifier checks in ``finalizeRound``.

A prover knows nothing of IPFS or transactions: given the round's public values, the committed
rows behind them and the round's tag (:func:`round_tag`: chain, market, project and round, what
``TrainingMarket.finalizeRound`` hands the verifier) it returns proof bytes that verify only with
that tag. :class:`EzklProver` proves the Gram circuit with ezkl for
projects whose verifier is an ``EzklRoundVerifier``; :class:`HashProver` serves the local-only
``TestRoundVerifier``. :func:`prover_for` picks the one a project needs from what the project's
verifier declares (``IRoundVerifier.proofSystem()``), and refuses a verifier built for another
version of the scoring rule than this code implements (``ruleVersion()`` against
:data:`marketplace.rule.RULE_VERSION`) before any key is set up or any proof computed.

A prover also proves a trainer's published row (:meth:`RoundProver.prove_row`): the proof that
``TrainingMarket.disputeRejection`` hands the verifier's ``verifyRow`` with the row's integers
(:func:`marketplace.protocol.commitment.published_row`) and the trainer's commitment. A trainer, who
proves rows only, takes :func:`row_prover_for`: the same choice, without the round circuit's keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, NamedTuple, Protocol

import numpy as np
from eth_abi import encode as abi_encode
from eth_utils import keccak

from marketplace.adapters.chain.compile import compile_contracts
from marketplace.adapters.chain.market import MarketClient, VerifierInfo
from marketplace.protocol import round_tag as tags
from marketplace.protocol.commitment import commitment_bytes, published_row
from marketplace.protocol.ordering import verifier_inputs
from marketplace.rule import RULE_VERSION

if TYPE_CHECKING:  # ezkl and torch are imported only when a proof is made
    from marketplace.adapters.ezkl.keys import RowKeys


#: The reference commitment ``finalizeRound`` hands the verifier when the owner revealed none.
NO_REFERENCE = b"\0" * 32


def local_hash_proof(
    tag: bytes, commitments: list[bytes], scores: list[int], flags: list[bool], reference: bytes = NO_REFERENCE
) -> bytes:
    """The "proof" the local-only ``TestRoundVerifier`` accepts: the keccak256 of the round ``tag``,
    the public values (in arrival order, as :func:`recorded_verifier_inputs` gives them) and the owner's
    ``reference`` commitment (:data:`NO_REFERENCE` for none).

    It proves nothing about how scores were computed; it exists so that local runs and tests
    exercise the finalize path (tampered values, a dropped or forged reference are still rejected). The
    tag (:func:`round_tag`) makes it valid for one round of one project only, as a real proof is.
    """
    if len(tag) != 32 or len(reference) != 32:
        raise ValueError(f"a round tag and a reference are 32 bytes each, got {len(tag)} and {len(reference)}")
    types = ["bytes32", "bytes32[]", "uint256[]", "bool[]", "bytes32"]
    return keccak(abi_encode(types, [tag, commitments, scores, flags, reference]))


def local_row_proof(row: np.ndarray) -> bytes:
    """The "row proof" the local-only ``TestRoundVerifier.verifyRow`` accepts for a committed ``row``:
    ``keccak256(abi.encode(bytes32 commitment, int256[] rowInts))`` with the row's commitment
    (:func:`~marketplace.protocol.commitment.commitment_bytes`) and its published integers
    (:func:`~marketplace.protocol.commitment.published_row`). Anyone can make it for any row: it
    proves nothing (like :func:`local_hash_proof`)."""
    values = np.asarray(row, dtype=np.float64).reshape(-1)
    return keccak(abi_encode(["bytes32", "int256[]"], [commitment_bytes(values), published_row(values)]))


def round_tag(market: MarketClient, project_id: int, round_: int) -> bytes:
    """The tag ``finalizeRound`` hands the verifier for round ``round_`` of ``project_id`` on
    ``market``'s chain (``TrainingMarket.roundTag``; :func:`marketplace.protocol.round_tag.round_tag`):
    a proof verifies only with the tag it was made for. The aggregator proves with it; ``marketplace
    verify`` and the web app's "Verify on chain" check with it (:func:`recorded_verifier_inputs`)."""
    return tags.round_tag(market.chain.chain_id, market.market.address, project_id, round_)


class VerifierInputs(NamedTuple):
    """What ``finalizeRound`` hands the verifier, in ``IRoundVerifier.verifyRound``'s argument order
    (all but the proof): the round tag, then commitments, scores and flags in arrival order, then the
    owner's revealed reference commitment (:data:`NO_REFERENCE` for none)."""

    tag: bytes
    commitments: list[bytes]
    scores: list[int]
    flags: list[bool]
    reference: bytes = NO_REFERENCE


def recorded_verifier_inputs(
    market: MarketClient, project_id: int, round_: int, scores: list[int], flags: list[bool], rejected: list[bool]
) -> VerifierInputs:
    """The public values ``finalizeRound`` hands the verifier for these trainer-order ``scores``,
    ``flags`` and ``rejected`` marks, the round's on-chain commitments and arrival order, the
    round's tag, and the reference commitment the owner revealed in the round (``referenceOf``)."""
    commitments = market.round_commitments(project_id, round_)
    ordered = verifier_inputs(commitments, scores, flags, rejected, market.arrival_order(project_id, round_))
    reference = market.reference_of(project_id, round_).commitment
    return VerifierInputs(round_tag(market, project_id, round_), *ordered, reference)


class RoundProver(Protocol):
    """Proves that ``scores`` and ``flags`` were computed from the committed rows.

    Every per-trainer argument is in arrival order (``MarketClient.arrival_order``), the order in
    which ``finalizeRound`` hands the values to the verifier: ``commitments`` as the verifier sees
    them (zero for a trainer without a submission and for a rejected one), ``rows`` the committed
    rows hashing to them (zero rows for those slots), ``flags`` and ``scores`` the circuit's outputs.
    ``tag`` is the round's tag (:func:`round_tag`): the proof must verify only with it, so that it
    is worthless for any other round, project, market or chain. ``reference`` is the owner's committed
    reference row (K + 2 grid values, ``docs/design/robust-reference.md``) the scores were computed
    with (:func:`marketplace.rule.gram.gram_rule_ref_int`), or None: no reference (the zero row; the
    rule without one, bit for bit)."""

    name: str

    def prove(
        self,
        commitments: list[bytes],
        rows: np.ndarray,
        scores: list[int],
        flags: list[bool],
        tag: bytes,
        reference: np.ndarray | None = None,
    ) -> bytes:
        """Returns the proof bytes for exactly these public values, this reference and this tag."""
        ...

    def prove_row(self, row: np.ndarray) -> bytes:
        """Returns the proof bytes ``verifyRow(commitment_bytes(row), published_row(row), proof)``
        accepts: that the published integers of the committed ``row`` (K + 2 grid values) are the row
        behind the trainer's commitment."""
        ...


class RowProver(Protocol):
    """Proves that a published row is the committed row behind a commitment (a trainer's dispute)."""

    name: str

    def prove_row(self, row: np.ndarray) -> bytes:
        """As :meth:`RoundProver.prove_row`."""
        ...


class HashProver:
    """For the local test verifier only: the "proof" is the hash of the public values (proves nothing)."""

    name = "test-hash"
    #: The ``proofSystem()`` of the verifiers it proves for (``TestRoundVerifier``).
    proof_system: ClassVar[str] = "test-hash"

    @classmethod
    def for_verifier(cls, market: MarketClient, info: VerifierInfo, *, srs: Path | None = None) -> HashProver:
        """The prover of a ``TestRoundVerifier`` (it needs nothing from the verifier)."""
        return cls()

    def prove(
        self,
        commitments: list[bytes],
        rows: np.ndarray,
        scores: list[int],
        flags: list[bool],
        tag: bytes,
        reference: np.ndarray | None = None,
    ) -> bytes:
        """:func:`local_hash_proof` with ``reference``'s commitment (:data:`NO_REFERENCE` for None)."""
        committed = NO_REFERENCE if reference is None else commitment_bytes(np.asarray(reference))
        return local_hash_proof(tag, commitments, scores, flags, committed)

    def prove_row(self, row: np.ndarray) -> bytes:
        """:func:`local_row_proof` (proves nothing)."""
        return local_row_proof(row)


class ProofMismatch(RuntimeError):
    """The circuit's outputs differ from the values the aggregator is about to record (a bug: the
    proof would be rejected on chain, so nothing is sent)."""


class ProverSelectionError(RuntimeError):
    """No prover of this code can prove the rounds of a project (raised before anything is proven)."""


class UnknownProofSystem(ProverSelectionError):
    """The project's verifier declares a proof system this code has no prover for."""

    def __init__(self, project_id: int, verifier: str, proof_system: str) -> None:
        self.project_id, self.verifier, self.proof_system = project_id, verifier, proof_system
        known = ", ".join(repr(p.proof_system) for p in PROVERS)
        super().__init__(
            f"project {project_id}'s verifier {verifier} declares proof system {proof_system!r}; "
            f"this code proves only for {known}"
        )


class RuleVersionMismatch(ProverSelectionError):
    """The project's verifier was deployed for another version of the scoring rule than this code
    implements: its proofs are about other flags and scores than the ones this code computes."""

    def __init__(self, project_id: int, verifier: str, verifier_version: str, local_version: str) -> None:
        self.project_id, self.verifier = project_id, verifier
        self.verifier_version, self.local_version = verifier_version, local_version
        super().__init__(
            f"project {project_id}'s verifier {verifier} was built for rule {verifier_version}; "
            f"this code implements rule {local_version}: serve it with the code of rule {verifier_version}"
        )


class VerifyingKeyMismatch(ProverSelectionError):
    """The circuit keys are not the ones the project's ``EzklRoundVerifier`` registered: the keys in
    ``keys_root`` made with the SRS ``srs`` (``keys.srs_id``: a SHA-256, or ``"dev"``) differ; or, with
    ``srs`` None, no cached keys match (``keys_root``: the cache looked through)."""

    def __init__(self, verifier: str, n: int, k: int, keys_root: Path, *, srs: str | None = None) -> None:
        self.verifier, self.n, self.k, self.keys_root, self.srs = verifier, n, k, keys_root, srs
        circuit = f"row circuit k={k}" if n == 1 else f"circuit n={n}, k={k}"
        if srs is None:
            which = f"in {keys_root}"
        else:  # "dev" is marketplace.adapters.ezkl.keys.DEV_SRS (not imported here: it loads ezkl)
            which = f"made with {'a development SRS' if srs == 'dev' else f'SRS sha256 {srs}'} ({keys_root})"
        setup = f"--row-only --sketch {k}" if n == 1 else f"--size {n}x{k}"
        super().__init__(
            f"the cached keys of {circuit} {which} do not match the verifying key registered by verifier "
            f"{verifier}: set up keys from the SRS file it was deployed with (its deployer publishes the file or "
            f"its sha256; `marketplace zk info` shows the recorded one): `marketplace zk setup --srs FILE {setup}`, "
            "then pass --srs FILE (or nothing: matching cached keys are found)"
        )


class EzklRowProver:
    """Real zero-knowledge proofs of the row circuit (:mod:`marketplace.rule.row_circuit`) for an
    ``EzklRoundVerifier``'s ``verifyRow``. It needs the row circuit's keys only (seconds and ~40 MB to
    set up; the round circuit's take a minute and ~500 MB), so a trainer disputing a rejection uses it."""

    name = "ezkl-row"
    #: The ``proofSystem()`` of the verifiers it proves for (``EzklRoundVerifier``).
    proof_system: ClassVar[str] = "ezkl-halo2-kzg"

    @classmethod
    def for_verifier(cls, market: MarketClient, info: VerifierInfo, *, srs: Path | None = None) -> EzklRowProver:
        """The row prover of the ``EzklRoundVerifier`` ``info`` describes: the row circuit of its K whose VKA
        is the row VKA the verifier registered (``rowVka()``). With ``srs``, the keys of that SRS file (set
        up once and cached); without, the cached keys (any SRS) that match. Raises
        :class:`VerifyingKeyMismatch` when those keys do not match (or no cached keys do)."""
        from marketplace.adapters.ezkl.keys import cache_dir, find_row_keys, setup_row

        row_vka, k = _row_vka(market, info.address), info.sketch_width
        if srs is not None:
            keys = setup_row(k, srs=srs)
        else:
            found = find_row_keys(k, row_vka)
            if found is None:
                raise VerifyingKeyMismatch(info.address, 1, k, cache_dir())
            keys = found
        return cls(keys, row_vka=row_vka, verifier=info.address)

    def __init__(self, keys: RowKeys, *, row_vka: list[bytes] | None = None, verifier: str = "") -> None:
        """``keys``: the row circuit's (:func:`marketplace.adapters.ezkl.keys.setup_row`); raises
        :class:`VerifyingKeyMismatch` unless their VKA is ``row_vka``, the words ``verifier`` registered
        (None: not checked)."""
        if row_vka is not None and row_vka != keys.vka_words():
            raise VerifyingKeyMismatch(verifier, 1, keys.k, keys.root, srs=keys.srs_id)
        self.keys = keys

    def prove_row(self, row: np.ndarray) -> bytes:
        """A proof of the row circuit in ``EzklRoundVerifier.verifyRow``'s format
        (:func:`marketplace.adapters.ezkl.prover.prove_row`); raises ``ProvingFailed`` if ezkl fails."""
        from marketplace.adapters.ezkl.prover import prove_row

        return prove_row(self.keys, row)


def _row_vka(market: MarketClient, verifier: str) -> list[bytes]:
    """The row circuit's VKA words an ``EzklRoundVerifier`` registered."""
    adapter = market.chain.contract(compile_contracts()["EzklRoundVerifier"], verifier)
    return [bytes(w) for w in market.chain.call(adapter.functions.rowVka())]


class EzklProver:
    """Real zero-knowledge proofs of the Gram circuit (ezkl, Halo2/KZG) for an ``EzklRoundVerifier``."""

    name = "ezkl-gram"
    #: The ``proofSystem()`` of the verifiers it proves for (``EzklRoundVerifier``).
    proof_system: ClassVar[str] = "ezkl-halo2-kzg"

    @classmethod
    def for_verifier(cls, market: MarketClient, info: VerifierInfo, *, srs: Path | None = None) -> EzklProver:
        """The prover of the ``EzklRoundVerifier`` ``info`` describes: its circuit's keys whose VKA is the
        VKA the verifier registered. With ``srs``, the keys of that SRS file (set up once and cached, see
        ``marketplace zk setup``); without, the cached keys (any SRS) that match. Raises
        :class:`VerifyingKeyMismatch` when those keys do not match (or no cached keys do). The row
        circuit's keys (same SRS) are checked against its ``rowVka()`` when a row is first proven."""
        from marketplace.adapters.ezkl.keys import cache_dir, find_keys, setup

        n, k = info.max_trainers, info.sketch_width  # an EzklRoundVerifier's maxTrainers is its circuit size
        verifier = market.chain.contract(compile_contracts()["EzklRoundVerifier"], info.address)
        on_chain = [bytes(w) for w in market.chain.call(verifier.functions.vka())]
        if srs is not None:
            keys = setup(n, k, srs=srs)
            if on_chain != keys.vka_words():
                raise VerifyingKeyMismatch(info.address, n, k, keys.root, srs=keys.srs_id)
        else:
            found = find_keys(n, k, on_chain)
            if found is None:
                raise VerifyingKeyMismatch(info.address, n, k, cache_dir())
            keys = found
        return cls(keys, row_vka=_row_vka(market, info.address), verifier=info.address)

    def __init__(self, keys: object, *, row_vka: list[bytes] | None = None, verifier: str = "") -> None:
        """``keys``: the round circuit's; ``row_vka``: the row circuit's VKA words the verifier registered
        (``rowVka()``; None: not checked), ``verifier`` its address."""
        from marketplace.adapters.ezkl.keys import CircuitKeys

        if not isinstance(keys, CircuitKeys):
            raise TypeError("EzklProver needs the circuit's CircuitKeys (marketplace.adapters.ezkl.keys.setup)")
        self.keys = keys
        self._row_vka, self._verifier = row_vka, verifier
        self._rows: EzklRowProver | None = None

    def prove_row(self, row: np.ndarray) -> bytes:
        """A proof of the row circuit of the round circuit's K made with the same SRS
        (:class:`EzklRowProver`, :func:`marketplace.adapters.ezkl.keys.row_keys_for`). Raises
        :class:`VerifyingKeyMismatch` if those row keys are not those the verifier registered, and
        ``ProvingFailed`` if ezkl fails."""
        from marketplace.adapters.ezkl.keys import row_keys_for

        if self._rows is None:
            self._rows = EzklRowProver(row_keys_for(self.keys), row_vka=self._row_vka, verifier=self._verifier)
        return self._rows.prove_row(row)

    def prove(
        self,
        commitments: list[bytes],
        rows: np.ndarray,
        scores: list[int],
        flags: list[bool],
        tag: bytes,
        reference: np.ndarray | None = None,
    ) -> bytes:
        """A Halo2 proof with ``tag`` as the circuit's tag input (bound: see ``EzklRoundVerifier``) and
        ``reference`` as its reference row (None: the zero row); raises :class:`ProofMismatch` unless its
        public outputs are exactly these values and its reference hash is ``reference``'s commitment."""
        from marketplace.adapters.ezkl.prover import prove_rows
        from marketplace.protocol.commitment import zero_row_commitment

        n, k = self.keys.n, self.keys.k
        rows = np.asarray(rows, dtype=np.float64)
        if rows.shape[0] > n or rows.shape[1] != k + 2:
            raise ValueError(f"the circuit takes up to {n} rows of {k + 2} values, got {rows.shape}")
        padded = np.zeros((n, k + 2))
        padded[: rows.shape[0]] = rows
        proof = prove_rows(self.keys, padded, tag, reference)
        used = len(commitments)
        zero = int.from_bytes(zero_row_commitment(k), "big")
        want_hashes = [int.from_bytes(c, "big") or zero for c in commitments]
        if proof.hashes[:used] != want_hashes:
            raise ProofMismatch("the committed rows do not hash to the commitments")
        want_ref = zero if reference is None else int.from_bytes(commitment_bytes(np.asarray(reference)), "big")
        if proof.reference_hash != want_ref:
            raise ProofMismatch("the reference row does not hash to its commitment")
        if proof.flags[:used] != list(flags) or proof.scores[:used] != list(scores):
            raise ProofMismatch(f"circuit outputs {proof.flags[:used]}, {proof.scores[:used]} != {flags}, {scores}")
        return proof.proof


#: The provers this code has, one per proof system a verifier may declare.
PROVERS: tuple[type[HashProver] | type[EzklProver], ...] = (HashProver, EzklProver)
#: The row provers, one per proof system (the same systems as :data:`PROVERS`).
ROW_PROVERS: tuple[type[HashProver] | type[EzklRowProver], ...] = (HashProver, EzklRowProver)


def _declared_verifier(market: MarketClient, project_id: int, rule_version: str) -> VerifierInfo:
    """The project's verifier, after checking that this code has a prover for its proof system and
    implements its rule version (see :func:`prover_for`)."""
    info = market.verifier_info(project_id)
    if info.proof_system not in {p.proof_system for p in PROVERS}:
        raise UnknownProofSystem(project_id, info.address, info.proof_system)
    if info.rule_version != rule_version:
        raise RuleVersionMismatch(project_id, info.address, info.rule_version, rule_version)
    return info


def prover_for(
    market: MarketClient, project_id: int, *, srs: Path | None = None, rule_version: str = RULE_VERSION
) -> RoundProver:
    """The prover ``project_id``'s verifier needs, chosen by the proof system it declares
    (``proofSystem()``): an :class:`EzklProver` with the circuit's keys for ``"ezkl-halo2-kzg"``,
    a :class:`HashProver` for the local test verifier's ``"test-hash"``.

    Raises, before any key is set up: :class:`UnknownProofSystem` for a proof system this code has
    no prover for, :class:`RuleVersionMismatch` when the verifier's ``ruleVersion()`` is not
    ``rule_version`` (this code's :data:`~marketplace.rule.RULE_VERSION`); and
    :class:`VerifyingKeyMismatch` when the keys are not those the verifier registered: with ``srs`` (the
    CLI's ``--srs``), the keys made with that SRS file (found in the cache or built); without, no cached
    keys of any SRS match (none are built: keys made with a fresh development SRS never match a verifier
    deployed before)."""
    info = _declared_verifier(market, project_id, rule_version)
    prover = {p.proof_system: p for p in PROVERS}[info.proof_system]
    return prover.for_verifier(market, info, srs=srs)


def row_prover_for(
    market: MarketClient, project_id: int, *, srs: Path | None = None, rule_version: str = RULE_VERSION
) -> RowProver:
    """The row prover ``project_id``'s verifier needs (for ``disputeRejection``), chosen and checked as
    :func:`prover_for` chooses (same errors, same use of ``srs``): an :class:`EzklRowProver` (the row
    circuit's keys only, checked against the verifier's ``rowVka()``) or a :class:`HashProver`."""
    info = _declared_verifier(market, project_id, rule_version)
    prover = {p.proof_system: p for p in ROW_PROVERS}[info.proof_system]
    return prover.for_verifier(market, info, srs=srs)
