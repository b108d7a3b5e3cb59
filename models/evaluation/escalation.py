"""Rerunning a UCI split whose NUTS chains failed, with settings chosen from why they failed.

One fixed rule, decided from the causes of the failing chains alone (never the test data;
:data:`models.inference.diagnostics.FAILURE_CAUSES`, the first that applies per chain), so one
protocol serves every data set instead of settings chosen per data set by hand:

1. a chain **stuck** (bulk ESS < 10: it started in a poor mode) and no member pool yet: train
   twice as many MAP nets and start the chains at the best ones (``member_pool``; on energy
   the stuck chains were the ones started hundreds of nats below the best member);
2. else a chain **diverged**, in product coordinates at power 1: the partly non-centred power
   0.75 (milder at a unit's small output weight, where wine's divergences sat), with at least
   :data:`LONG_DRAWS` draws (wine's splits that needed new coordinates needed them too);
3. else (too few effective draws, R-hat alone, E-BFMI, or a cause 1-2 cannot change further):
   more draws, at least :data:`LONG_DRAWS`, then twice as many, up to :data:`MAX_DRAWS`.

At most :data:`MAX_RERUNS` reruns per split. A rerun keeps the split's seed. The thresholds
come from the measurements in the README (concrete needed 8,000 draws, wine 24,000; wine split
3 48,000): fixed before the protocol that uses them was run.

Where a split passes only after a rerun, chance has had more than one try: a split's verdict
carries chance (README: the same split passes or fails with the seed), so a report counts
the splits that passed at their first settings apart from those that passed after reruns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from models.inference.diagnostics import FAILURE_CAUSES, chain_failure_causes

LONG_DRAWS = 24_000
MAX_DRAWS = 48_000
MAX_RERUNS = 3
POOL_FACTOR = 2
RERUN_POWER = 0.75


def failing_causes(result) -> set[str]:
    """The causes of one split's failing chains (empty if every chain passed, or if its chains
    were judged together: prior starts have no per-chain rows)."""
    within = (result.function_space or {}).get("within_chain")
    if not within:
        return set()
    return {c for c in chain_failure_causes(within) if c is not None}


def next_protocol(protocol, result):
    """The protocol to rerun a split with after ``result`` (its run under ``protocol``) failed
    its within-chain checks, by the rule in this module's docstring; None when it passed,
    has no per-chain causes, or nothing is left to change."""
    if result is None or result.diagnostics is None or result.diagnostics.passed:
        return None
    causes = failing_causes(result)
    if not causes:
        return None
    draws = protocol.sampler.draws
    if FAILURE_CAUSES[0] in causes and not protocol.member_pool:
        return protocol.replace(member_pool=POOL_FACTOR * protocol.sampler.chains)
    if FAILURE_CAUSES[1] in causes and protocol.power == 1:
        return protocol.replace(product_power=RERUN_POWER, sampler=protocol.sampler.replace(
            draws=max(draws, LONG_DRAWS)))
    more = max(LONG_DRAWS, 2 * draws) if draws < LONG_DRAWS else 2 * draws
    if more > MAX_DRAWS:
        return None
    return protocol.replace(sampler=protocol.sampler.replace(draws=more))


def changes(base, protocol) -> str:
    """What a rerun's protocol changed from the base one, in words ("draws 24000, power
    0.75"); "first settings" for the base itself."""
    out = []
    if protocol.member_pool != base.member_pool:
        out.append(f"member pool {protocol.member_pool}")
    if protocol.product_power != base.product_power:
        out.append(f"power {protocol.product_power:g}")
    if protocol.sampler.draws != base.sampler.draws:
        out.append(f"draws {protocol.sampler.draws}")
    return ", ".join(out) or "first settings"


@dataclass
class Rerun:
    """One split's runs in order: ``protocols[k]`` gave ``results[k]`` (k = 0: the base
    protocol). ``used`` is the first run whose checks passed, else the last run."""

    protocols: list
    results: list

    @property
    def used(self) -> int:
        ran = [k for k, r in enumerate(self.results) if r is not None]
        for k in ran:
            if self.results[k].diagnostics is not None and self.results[k].diagnostics.passed:
                return k
        return ran[-1] if ran else 0

    @property
    def passed(self) -> bool:
        r = self.results[self.used]
        return r is not None and r.diagnostics is not None and bool(r.diagnostics.passed)


def rerun_failing(results: Sequence, protocol, run: Callable, max_reruns: int = MAX_RERUNS,
                  on_round: Callable | None = None) -> list[Rerun]:
    """Rerun every failing split of ``results`` (one :class:`SplitResult` or None per split,
    all run under ``protocol``) by :func:`next_protocol`, up to ``max_reruns`` times each.

    ``run(groups)`` runs one round: ``groups`` is a list of ``(protocol, pairs)``, the (data
    set, split) ``pairs`` that need that protocol (the split's seed added as in
    :func:`models.evaluation.bnn.uci_splits`), and it returns, per group, their results in
    that order (None for a split that failed to run). A round is one call, so the runner can
    start every split of the round at once (:func:`models.evaluation.bnn.uci_groups`) instead
    of waiting for one protocol's splits before the next's. ``on_round(k, n)``: called before
    round k with the number of splits it reruns. Returns one :class:`Rerun` per split, in
    order."""
    reruns = [Rerun([protocol], [r]) for r in results]
    for k in range(1, max_reruns + 1):
        wanted: dict = {}
        for i, rr in enumerate(reruns):
            if rr.results[-1] is None or len(rr.results) != k:
                continue
            nxt = next_protocol(rr.protocols[-1], rr.results[-1])
            if nxt is not None:
                wanted.setdefault(repr(nxt), (nxt, []))[1].append(i)
        if not wanted:
            break
        if on_round is not None:
            on_round(k, sum(len(ix) for _, ix in wanted.values()))
        groups = [(nxt, [(reruns[i].results[-1].data, reruns[i].results[-1].split) for i in ix])
                  for nxt, ix in wanted.values()]
        for (nxt, ix), got in zip(wanted.values(), run(groups)):
            for i, r in zip(ix, got):
                reruns[i].protocols.append(nxt)
                reruns[i].results.append(r)
    return reruns
