"""Structural copy of a Graph, so passes can be pure (IR -> new IR)."""
from __future__ import annotations

import copy

from .graph import Graph


def copy_graph(g: Graph) -> Graph:
    # deepcopy keeps identity-sharing (a Value used by several nodes stays one object);
    # Locs and attrs are plain data. `grad` nodes point at forward nodes through attrs,
    # which deepcopy maps consistently in the same memo.
    return copy.deepcopy(g)
