"""Round latency breakdown: where a round's time and gas go, for N = 8, 16 and 32 trainers.

    python -m bench.latency [--trainers 8 16 32] [--rounds 2] [--model mlp] [--no-zk] [--out reports/latency.json]

Each N runs in its own process (so ``peak MB`` is that run's) on its own embedded stack, exactly as
``marketplace demo`` does: a local anvil chain, a local IPFS node, the contracts deployed, and (by
default) the real ezkl round verifier for the smallest circuit that fits N (keys cached in
``.cache/zk``; a missing key set is generated first and reported as ``setup``). The owner posts a
job for N trainers on the digits task (IID shards); one trainer sign-flips and one sends a zero
update, so every round has flags to prove and slash. Every trainer is a real
:class:`~marketplace.roles.trainer.TrainerNode` and the aggregator a real
:class:`~marketplace.roles.aggregator.AggregatorNode`; their own per-phase timings are collected:

* trainer (per trainer, mean and slowest), in the commit phase: **fetch** the global model from IPFS,
  **train** locally (PyTorch), **commit** (read the seed and K, sketch, committed row, Poseidon hash), **pin**
  the update, **seal** (derive the salt, encrypt the note, ``commitUpdate`` until mined); then, once every
  trainer committed, in the reveal phase: **reveal** (``revealUpdate``, until mined);
* aggregator: **fetch** and check every update (CID, safetensors, commitment), **score** (the Gram
  rule + FedAvg), **pin** the new model, **prove** (ezkl witness + proof; the test verifier's hash
  otherwise), **finalize** (``finalizeRound``, until mined: the verifier runs on chain).

One-time per-process costs (torch's first backward pass, ezkl's Poseidon, the first IPFS request) are
paid before the clock starts. Trainers run one after another in this process; in the marketplace they
train in parallel on their own machines, and the reveals start when the last commit is mined, so a
round's **critical path** is the slowest trainer's commit phase, plus the slowest reveal, plus the
aggregator.

Gas per trainer per round = its ``commitUpdate`` + its ``revealUpdate`` + its share (1/N) of
``finalizeRound`` (which includes the on-chain proof verification and one batched ``recordRound`` on
the reliability registry). Batched vs unbatched reliability updates: every round's real outcomes are also recorded
on two extra registries, all trainers in one call vs one call per trainer.

Measured with commit-reveal (2 rounds per N, the demo's ``mlp`` of 2,410 parameters, 2 shared cores;
``reports/latency.json``): N = 8 with real ezkl proofs (``python -m bench.latency --trainers 8``); the
trainer phases and the commit and reveal gas of N = 16 and 32 with ``--no-zk`` (they do not depend on the
verifier; the zk verifier's ``acceptsCommitment`` adds ~150 gas to a reveal). Per trainer (mean)::

    | N | fetch | train | commit | pin | seal (commit tx) | reveal (tx) | slowest trainer |
    |---:|---:|---:|---:|---:|---:|---:|---:|
    | 8 | 8 ms | 5 ms | 29 ms | 38 ms | 28 ms | 21 ms | 167 ms |
    | 16 | 9 ms | 204 ms | 32 ms | 24 ms | 31 ms | 22 ms | 605 ms |
    | 32 | 9 ms | 5 ms | 30 ms | 34 ms | 33 ms | 24 ms | 197 ms |

Aggregator, per round (N = 16 and 32: the last full run, before commit-reveal, which changed nothing the
aggregator times)::

    | N | fetch | score | pin | prove | finalize | round (critical path) | peak RSS |
    |---:|---:|---:|---:|---:|---:|---:|---:|
    | 8 | 490 ms | 1 ms | 51 ms | 15.4 s | 372 ms | 16.5 s | 1.54 GB |
    | 16 | 1.1 s | 2 ms | 62 ms | 19.5 s | 535 ms | 21.3 s | 1.58 GB |
    | 32 | 2.1 s | 2 ms | 61 ms | 80.0 s | 713 ms | 83.1 s | 4.50 GB |

Gas per round (mean of the 2 rounds; the first round of a project costs more: cold storage; finalize of
N = 16 and 32 with the zk verifier from the run before commit-reveal)::

    | N | commit | reveal | both | finalize (incl. proof) | per trainer per round | batched / N | 1-by-1 / N | saved |
    |---:|---:|---:|---:|---:|---:|---:|---:|---:|
    | 8 | 67,635 | 81,587 | 149,222 | 1,726,963 (1.80M, 1.65M) | 365,092 | 22,052 | 43,913 | 50 % |
    | 16 | 67,443 | 81,437 | 148,880 | 2,027,387 (2.17M, 1.88M) | 275,592 | 20,475 | 43,897 | 53 % |
    | 32 | 67,349 | 81,438 | 148,787 | 2,680,898 (2.96M, 2.40M) | 232,565 | 19,682 | 43,885 | 55 % |

Findings:

* **Proving is the round**: 94-96 % of the aggregator's time, 15-20 s up to 16 trainers and 80 s
  (4.5 GB) at 32 (logrows 17); everything else in a round is ~1-3 s. The key setup, once per circuit
  and cached, took 36 s (16 x 32) and 121 s (32 x 32).
* **Commit-reveal** costs each trainer a second transaction: ~149k gas per round instead of ~69k for the
  single ``submitUpdate`` before it (commit ~67k: the seal, the arrival and the note in its event; reveal
  ~81k: the seal is recomputed and the CID and commitment stored), so +80k per trainer per round (+30 % of
  the per-trainer total at N = 8, +52 % at N = 32 where the proof check is shared by more trainers). In
  time it adds one transaction to a trainer's path (~20-30 ms on anvil; a block on a real chain) and the
  wait for the commit phase to close: the reveals start when the last trainer committed (or at the commit
  deadline).
* The aggregator's **fetch** is ~60-70 ms per update on this small model (IPFS round trip, CID and
  safetensors checks, the Poseidon commitment check ~15 ms): latency-bound, linear in N (see
  ``bench/scale.py`` for large models, where bandwidth dominates).
* On this task a **trainer**'s whole round is 0.2-0.6 s (2 epochs over ~40-140 digits; the mean training
  time varies between runs with the warm-up); ``commit`` includes two chain reads (the project's seed and
  K) besides the sketch and Poseidon hash, ``seal`` the signature that derives the salt and the note.
* **Gas per trainer per round** falls with N (365k -> 233k) because the proof check (~1.3-1.5M) is
  paid once per round; the batched reliability update costs ~20k per trainer against ~44k in
  separate calls (50-55 % saved).
* At N = 32 (shards of ~40 digits) the sign-flipper was **not flagged** in either round (the zero
  free rider was): honest updates on such small shards agree too little for the ``far`` test (the
  known limit, see ``bench/robustness.py``); it was paid nothing (its update points against the
  inliers' mean, so its score is 0) but its update was averaged into the model.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

from rich.console import Console
from rich.table import Table

#: A trainer's phases, as ``Committed``/``Submitted`` time them (``submit`` is the reveal transaction).
TRAINER_PHASES = ("fetch", "train", "commit", "pin", "seal", "submit")
COMMIT_PHASES = TRAINER_PHASES[:-1]
#: Column names: ``submit`` is shown as ``reveal``.
PHASE_LABELS = {"submit": "reveal"}
AGGREGATOR_PHASES = ("fetch", "score", "pin", "prove", "finalize")
ETH = 10**18


def measure(n: int, rounds: int, model: str, zk: bool, log: Console) -> dict[str, Any]:
    """Runs one ``n``-trainer job of ``rounds`` rounds in this process and returns its figures."""
    from bench.gas import reliability_gas, reliability_registries
    from marketplace.adapters.chain.compile import compile_contracts
    from marketplace.adapters.chain.deploy import TEST_VERIFIER
    from marketplace.adapters.chain.market import ProjectConfig
    from marketplace.adapters.ezkl.keys import circuit_for
    from marketplace.demo.adversaries import update_source
    from marketplace.demo.attacks import Attack
    from marketplace.demo.job import deploy_zk_round_verifier, local_stack
    from marketplace.fl.data import load_npz, partition_digits
    from marketplace.fl.models import build_model, num_params
    from marketplace.roles.aggregator import AggregatorNode
    from marketplace.roles.trainer import Committed, Submitted, TrainerNode, TrainingSettings

    attacks = [Attack.NONE] * (n - 2) + [Attack.SIGN_FLIP, Attack.FREE_RIDER_ZERO]
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp, local_stack(Path(tmp), n + 3) as stack:
        shards = partition_digits(n, "iid", seed=0, out_dir=Path(tmp) / "shards")
        owner = stack.admin.as_account(stack.accounts[1])
        aggregator_client = stack.admin.as_account(stack.accounts[2])
        t0 = time.perf_counter()
        verifier = deploy_zk_round_verifier(stack, n, log) if zk else stack.deployment.address(TEST_VERIFIER)
        setup_s = time.perf_counter() - t0
        initial_cid = stack.store.put_tensors(build_model(model, seed=0).state_dict(), {"kind": "model"})
        cfg = ProjectConfig(
            aggregator=aggregator_client.address, verifier=verifier, reward_budget=n * ETH // 2,
            aggregator_fee=ETH // 10, stake=ETH // 100, rounds=rounds, min_trainers=n, max_trainers=n,
            model_name=model, initial_model_cid=initial_cid,
        )  # fmt: skip
        pid = owner.create_project(cfg)
        trainers = [
            TrainerNode(
                stack.admin.as_account(stack.accounts[3 + i]),
                stack.store,
                update_source(attacks[i], load_npz(shards[i]), TrainingSettings(epochs=2, lr=0.5, seed=i)),
            )
            for i in range(n)
        ]
        for t in trainers:
            t.join(pid)
        aggregator = AggregatorNode(aggregator_client, stack.store)
        _warm_up(model, load_npz(shards[0]), stack.store, aggregator_client.sketch_width(pid))
        registries = reliability_registries(stack.admin.chain, compile_contracts())

        per_round = []
        for round_ in range(rounds):
            committed, submitted = [], []
            for t in trainers:  # the commit phase: it closes with the last commit
                outcome = t.step(pid)
                if not isinstance(outcome, Committed):
                    raise RuntimeError(f"trainer {t.address} did not commit in round {round_}: {outcome}")
                committed.append(outcome)
            for t in trainers:  # the reveal phase
                outcome = t.step(pid)
                if not isinstance(outcome, Submitted):
                    raise RuntimeError(f"trainer {t.address} did not reveal in round {round_}: {outcome}")
                submitted.append(outcome)
            report = aggregator.step(pid)
            if report is None or report.already_finalized:
                raise RuntimeError(f"round {round_} was not finalized")
            batched, one_by_one = reliability_gas(
                stack.admin.chain, registries, pid, round_, report.trainers, report.flags, report.submitted
            )
            trainer_total = [sum(s.timings[p] for p in TRAINER_PHASES) for s in submitted]
            commit_phase = [sum(s.timings[p] for p in COMMIT_PHASES) for s in submitted]
            row = {
                "round": round_,
                "trainer_mean": {p: mean(s.timings[p] for s in submitted) for p in TRAINER_PHASES},
                "trainer_max": {p: max(s.timings[p] for s in submitted) for p in TRAINER_PHASES},
                "trainer_total_max": max(trainer_total),
                "trainer_path": max(commit_phase) + max(s.timings["submit"] for s in submitted),
                "aggregator": {p: report.timings[p] for p in AGGREGATOR_PHASES},
                "commit_gas_mean": mean(c.gas_used for c in committed),
                "reveal_gas_mean": mean(s.gas_used - c.gas_used for c, s in zip(committed, submitted, strict=True)),
                "finalize_gas": report.gas_used,
                "reliability_batched_gas": batched,
                "reliability_one_by_one_gas": one_by_one,
                "flagged": [i for i, f in enumerate(report.flags) if f],
                "prover": report.prover,
            }
            row["aggregator_total"] = sum(row["aggregator"].values())
            row["critical_path"] = row["trainer_path"] + row["aggregator_total"]
            per_round.append(row)
            log.print(
                f"N={n} round {round_}: trainers (commit phase + reveal) {row['trainer_path']:.2f} s, aggregator "
                f"{row['aggregator_total']:.1f} s (prove {report.timings['prove']:.1f} s), gas commit "
                f"{row['commit_gas_mean']:,.0f} + reveal {row['reveal_gas_mean']:,.0f} per trainer, finalize "
                f"{report.gas_used:,}, flagged {row['flagged']}"
            )

    circuit = circuit_for(n) if zk else None
    return {
        "n": n,
        "rounds": rounds,
        "model": model,
        "params": num_params(model),
        "verifier": f"ezkl {circuit[0]} slots x {circuit[1]}" if circuit else "test (hash, no proof)",
        "setup_s": round(setup_s, 2),
        "per_round": per_round,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **summary(per_round, n),
    }


def _warm_up(model: str, data: Any, store: Any, k: int) -> None:
    """One-time per-process costs (torch's first backward pass, ezkl's Poseidon, the first IPFS request),
    paid before the clock starts: a trainer or aggregator pays them once, not every round."""
    import numpy as np

    from marketplace.fl.models import build_model, num_params
    from marketplace.fl.train import train_local
    from marketplace.protocol.commitment import commit_update

    train_local(model, build_model(model, seed=1).state_dict(), data, 1, 0.1, 32, seed=0)
    commit_update(np.ones(num_params(model), dtype=np.float32), 1, k)
    store.get_bytes(store.put_bytes(b"warm-up"))


def summary(per_round: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Means over the rounds of what the tables show."""

    def avg(get: Any) -> float:
        return float(mean(get(r) for r in per_round))

    out: dict[str, Any] = {
        "trainer_mean_s": {p: avg(lambda r, p=p: r["trainer_mean"][p]) for p in TRAINER_PHASES},
        "trainer_slowest_s": avg(lambda r: r["trainer_total_max"]),
        "trainer_path_s": avg(lambda r: r["trainer_path"]),
        "aggregator_s": {p: avg(lambda r, p=p: r["aggregator"][p]) for p in AGGREGATOR_PHASES},
        "aggregator_total_s": avg(lambda r: r["aggregator_total"]),
        "critical_path_s": avg(lambda r: r["critical_path"]),
        "commit_gas": avg(lambda r: r["commit_gas_mean"]),
        "reveal_gas": avg(lambda r: r["reveal_gas_mean"]),
        "finalize_gas": avg(lambda r: r["finalize_gas"]),
        "reliability_batched_gas": avg(lambda r: r["reliability_batched_gas"]),
        "reliability_one_by_one_gas": avg(lambda r: r["reliability_one_by_one_gas"]),
    }
    out["gas_per_trainer_round"] = out["commit_gas"] + out["reveal_gas"] + out["finalize_gas"] / n
    out["reliability_saving"] = 1 - out["reliability_batched_gas"] / out["reliability_one_by_one_gas"]
    return out


def _s(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.1f} s"


def time_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        title="Round latency (mean over rounds): trainer phases per trainer (mean), aggregator phases per round"
    )
    cols = ["N", "verifier", *(f"t.{PHASE_LABELS.get(p, p)}" for p in TRAINER_PHASES), "slowest trainer",
            "trainers' path", *(f"a.{p}" for p in AGGREGATOR_PHASES), "aggregator", "critical path",
            "peak MB"]  # fmt: skip
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(
            str(r["n"]), r["verifier"], *(_s(r["trainer_mean_s"][p]) for p in TRAINER_PHASES),
            _s(r["trainer_slowest_s"]), _s(r["trainer_path_s"]),
            *(_s(r["aggregator_s"][p]) for p in AGGREGATOR_PHASES), _s(r["aggregator_total_s"]),
            f"[bold]{_s(r['critical_path_s'])}[/bold]", f"{r['peak_rss_mb']:,.0f}",
        )  # fmt: skip
    return table


def gas_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        title="Gas per round (mean over rounds); reliability: the same outcomes batched vs one call per trainer"
    )
    cols = ["N", "commit", "reveal", "finalize", "finalize/N", "per trainer per round", "reliability batched",
            "batched/N", "1-by-1", "1-by-1/N", "saved"]  # fmt: skip
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        n = r["n"]
        b, o = r["reliability_batched_gas"], r["reliability_one_by_one_gas"]
        table.add_row(
            str(n), f"{r['commit_gas']:,.0f}", f"{r['reveal_gas']:,.0f}", f"{r['finalize_gas']:,.0f}",
            f"{r['finalize_gas'] / n:,.0f}",
            f"[bold]{r['gas_per_trainer_round']:,.0f}[/bold]", f"{b:,.0f}", f"{b / n:,.0f}", f"{o:,.0f}",
            f"{o / n:,.0f}",
            f"{r['reliability_saving']:.0%}",
        )  # fmt: skip
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainers", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--no-zk", dest="zk", action="store_false", help="the test verifier instead of real proofs")
    parser.add_argument("--out", type=Path, default=Path("reports/latency.json"))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        result = measure(args.one, args.rounds, args.model, args.zk, Console(stderr=True))
        print(json.dumps(result))
        return
    rows = []
    for n in args.trainers:
        cmd = [sys.executable, "-m", "bench.latency", "--one", str(n), "--rounds", str(args.rounds)]
        cmd += ["--model", args.model, *([] if args.zk else ["--no-zk"])]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if out.returncode != 0:
            print(f"N={n}: failed (exit {out.returncode})", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    console = Console(width=220)
    console.print(time_table(rows))
    console.print(gas_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    console.print(f"written {args.out}")


if __name__ == "__main__":
    main()
