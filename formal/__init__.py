"""Formal proofs of the gateware's protocol and safety properties (docs/formal.md); `python -m formal` runs them.

One module per proved block, each with a list PROOFS of `_common.Proof`.
"""

from . import bus_arbiter

PROOF_MODULES = (bus_arbiter,)
