"""Steady-state edge rates for a broadcast, from a linear program (pure; scipy's HiGHS).

Find the largest rate R at which one source can feed every receiver at once, and the edge rates
z(u, v) that carry it: maximise R subject to
- per receiver r, a flow f_r of value R from the source to r with f_r(u, v) <= z(u, v);
- z(u, v) <= bandwidth(u, v); the sum of z out of u <= up(u); the sum of z into v <= down(v).

Each receiver's flow may reuse the same edge capacity z (the network-coding relaxation: one
byte sent on an edge serves every receiver behind it), so R is an upper bound on the rate of
any routing schedule, and z says how a sender should split its upload among its neighbours.
The swarm planner's `rates` policy feeds each sender's neighbours in proportion to z.

Size: receivers x edges flow variables, so callers use it on sparse graphs of tens of peers
(`RATES_MAX_WORK`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bcfl.network.plan import PlanError, Problem
from bcfl.network.topology import Topology

RATES_MAX_WORK = 30_000  # receivers x edges above which the planner does not solve the program
RATES_TIME_LIMIT_S = 300.0  # the solver's budget; a plan is still made without the rates


@dataclass(frozen=True)
class BroadcastRates:
    rate: float  # R, bytes/s every receiver can get at once
    edges: dict[tuple[int, int], float]  # z(u, v), bytes/s


def broadcast_rates(
    topo: Topology, problem: Problem, *, time_limit: float = RATES_TIME_LIMIT_S
) -> BroadcastRates:
    """The program in the module docstring for a problem whose objects share one source
    (PlanError when it has several, or when the solver fails or runs out of `time_limit`)."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    sources = {spec.source for spec in problem.objects.values()}
    if len(sources) != 1:
        raise PlanError(f"broadcast rates need one source, the problem has {len(sources)}")
    (source,) = sources
    receivers = [r for r in problem.receivers if r != source]
    if not receivers:
        raise PlanError("broadcast rates need a receiver other than the source")
    edges = [(u, v) for u, v in topo.graph.edges if v != source]
    n_edges = len(edges)
    outs: dict[int, list[int]] = {n: [] for n in topo.graph.nodes}
    ins: dict[int, list[int]] = {n: [] for n in topo.graph.nodes}
    for e, (u, v) in enumerate(edges):
        outs[u].append(e)
        ins[v].append(e)
    # variables: R, z[e], then f_k[e] for each receiver k
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    rhs: list[float] = []

    def constraint(terms: list[tuple[int, float]], limit: float) -> None:
        row = len(rhs)
        for col, coef in terms:
            rows.append(row)
            cols.append(col)
            vals.append(coef)
        rhs.append(limit)

    for k, r in enumerate(receivers):
        flow = 1 + n_edges + k * n_edges
        for node in topo.graph.nodes:
            if node == source:
                continue
            # what leaves a relay never exceeds what reaches it; r keeps R of what reaches it
            terms = [(flow + e, 1.0) for e in outs[node]] + [(flow + e, -1.0) for e in ins[node]]
            if node == r:
                terms.append((0, 1.0))
            constraint(terms, 0.0)
        for e in range(n_edges):
            constraint([(flow + e, 1.0), (1 + e, -1.0)], 0.0)
    for node in topo.graph.nodes:
        if outs[node]:
            constraint([(1 + e, 1.0) for e in outs[node]], topo.up(node))
        if ins[node]:
            constraint([(1 + e, 1.0) for e in ins[node]], topo.down(node))
    n_vars = 1 + n_edges * (1 + len(receivers))
    matrix = coo_matrix((vals, (rows, cols)), shape=(len(rhs), n_vars)).tocsr()
    objective = np.zeros(n_vars)
    objective[0] = -1.0
    bounds = (
        [(0.0, None)]
        + [(0.0, topo.bandwidth(u, v)) for u, v in edges]
        + [(0.0, None)] * (n_edges * len(receivers))
    )
    result = linprog(
        objective,
        A_ub=matrix,
        b_ub=np.array(rhs),
        bounds=bounds,
        method="highs",
        options={"time_limit": time_limit},
    )
    if result.status != 0:
        raise PlanError(f"broadcast rate program failed: {result.message}")
    z = result.x[1 : 1 + n_edges]
    return BroadcastRates(float(result.x[0]), {edges[e]: float(z[e]) for e in range(n_edges)})


def rates_fit(topo: Topology, problem: Problem) -> bool:
    """Whether the planner should solve the program: one source and a small enough graph."""
    one_source = len({spec.source for spec in problem.objects.values()}) == 1
    return one_source and len(problem.receivers) * topo.graph.number_of_edges() <= RATES_MAX_WORK
