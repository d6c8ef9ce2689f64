"""Quorum for untrusted networks (BOINC's redundancy), the pure rules; replicas.py applies them to the database.

A job submitted with `redundancy = 2` runs each task as replicas on workers of different contributors
(workers.owner_id). A replica's result is the SHA-256 of each named output (data ids are content hashes;
compared by name, logs are not compared), or FAILED when the user's script failed there. Once
`redundancy` results agree the task is decided: the majority is the task's result, the replicas that
agree earn, the odd one out earns nothing and its worker loses trust. A mismatch asks for one more
replica on yet another contributor, up to 2 × redundancy − 1 replicas (3 for 2); when no result can
reach a majority any more the task fails (NO_MAJORITY).

Trust: every worker starts at 0; each agreement adds TRUST_AGREE (up to TRUST_CEILING), each time it
is outvoted costs TRUST_ODD. Workers below the master's `quorum_min_trust` (default -10) get no quorum
replicas: a new worker caught once is out (-20); one with more than 10 agreements survives one mismatch.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from runsurge_master.placement import Capacity, ReadyTask, place

FAILED = "failed"  # the user's script failed on that replica: failures agree with each other
NO_MAJORITY = "results differ between workers: the script may be non-deterministic"
TRUST_AGREE = 1
TRUST_CEILING = 20
TRUST_ODD = 20


def result_key(outputs: dict[str, tuple[str, int]]) -> str:
    """What replicas compare: each output's name and content hash (output names hold no newline or NUL)."""
    text = "\n".join(f"{name}\0{data_id}" for name, (data_id, _) in sorted(outputs.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def trust_after(trust: int, agreed: bool) -> int:
    if agreed:
        return max(trust, min(TRUST_CEILING, trust + TRUST_AGREE))  # never lowers a trust the operator raised
    return trust - TRUST_ODD


@dataclass(frozen=True)
class Decision:
    wanted: int                    # results needed before the quorum can decide (placed replicas count)
    winners: tuple = ()            # ids of the replicas with the majority result: the task is decided
    losers: tuple = ()             # ids of the outvoted replicas
    no_majority: bool = False      # every replica allowed has reported and no result has a majority


def decide(results: list[tuple[object, str]], redundancy: int) -> Decision:
    """`results`: (replica id, result key) of the replicas that reported, in a stable order."""
    counts = Counter(key for _, key in results)
    best, n = counts.most_common(1)[0] if counts else (None, 0)
    if n >= redundancy:
        return Decision(wanted=len(results), winners=tuple(i for i, k in results if k == best),
                        losers=tuple(i for i, k in results if k != best))
    wanted = len(results) + redundancy - n  # the fewest more results that could still make a majority
    if wanted > 2 * redundancy - 1:
        return Decision(wanted=len(results), no_majority=True)
    return Decision(wanted=wanted)


@dataclass
class ReplicaNeed:
    count: int                                     # replicas to place now (0: all it needs are placed)
    busy: set[str] = field(default_factory=set)    # contributors running it or holding an undecided result
    differ: bool = False                           # the results so far disagree


def place_in_order(tasks: list[ReadyTask], workers: list[Capacity], needs: dict[str, ReplicaNeed],
                   owner_of: dict[str, str], trusted: set[str]) -> list[tuple[str, str]]:
    """placement.place for a window mixing plain and quorum tasks, in the same order. A task in `needs`
    gets `count` replicas, each placed by the same policy among `trusted` workers whose contributors are
    not `busy` and differ from each other. It gets none while fewer such contributors are online than it
    needs, so no slot is held by a quorum that cannot complete yet."""
    out: list[tuple[str, str]] = []
    plain: list[ReadyTask] = []
    for task in tasks:
        if task.id not in needs:
            plain.append(task)
            continue
        if plain:
            out += place(plain, workers)
            plain = []
        need = needs[task.id]
        candidates = [w for w in workers if w.id in trusted and owner_of[w.id] not in need.busy
                      and w.id not in task.avoid]
        if need.count < 1 or len({owner_of[w.id] for w in candidates}) < need.count:
            continue
        taken: set[str] = set()
        for _ in range(need.count):
            pairs = place([task], [w for w in candidates if owner_of[w.id] not in taken])
            if not pairs:
                break
            out += pairs
            taken.add(owner_of[pairs[0][1]])
    if plain:
        out += place(plain, workers)
    return out
