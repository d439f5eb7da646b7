"""Trust: evaluation assignment, vote files, PageRank scores, the gate, defences and attacks.

- `assignment`: which updates each peer evaluates (bounded, seeded, balanced).
- `votes`: the vote file format (canonical JSON) and its strict parser.
- `pagerank`: scores from the vote graph (personalised, collusion-resistant, bit-reproducible).
- `gate`: the included set from scores and on-chain reputation; the reputation rule.
- `defences`: baseline robust-aggregation rules behind one interface, plus the vote-based gate.
- `attacks`: update, data and voting attacks for experiments.
"""
