"""Formal proofs of the gateware's protocol and safety properties (docs/formal.md); `python -m formal` runs them.

One module per proved block, each with a list PROOFS of `_common.Proof`.
"""

from . import axi4, axi_lite, bank_array, bus_arbiter, sequencer, uart_link

PROOF_MODULES = (uart_link, bus_arbiter, axi_lite, axi4, sequencer, bank_array)
