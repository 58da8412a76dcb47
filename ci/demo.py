"""`make demo`: a GEMV on the bank array (sim preset) in Verilator, compared bit for bit with the golden model.

Until the host driver exists this drives the array's command port from a cocotb testbench; the verdict, the
error against float64, the cycle count and the MAC utilisation are printed at the end. Exit status is
non-zero unless the result is bit-exact.
"""

import json
import sys
import time

from tb.bank_array.test_bank_array import run
from tb.support.runner import BUILD


def main():
    out = BUILD / "demo"
    out.mkdir(parents=True, exist_ok=True)
    result, log = out / "gemv.json", out / "gemv.log"
    result.unlink(missing_ok=True)
    print("demo: building the sim-preset bank array with Verilator and running a 256x1024 GEMV "
          f"(log: {log}) ...", flush=True)
    t0 = time.perf_counter()
    try:
        run("sim", testcase="test_gemv", extra_env={"GEMV_RESULT_FILE": str(result)}, log_file=log)
    except (AssertionError, SystemExit) as e:
        print(f"demo: FAILED ({e}); see {log}", file=sys.stderr)
        sys.exit(1)
    r = json.loads(result.read_text())
    verdict = "BIT-EXACT" if r["bit_exact"] else "MISMATCH"
    print(f"GEMV {r['m']}x{r['k']} on the bank array (16 banks x 16 lanes) vs golden model: {verdict}")
    print(f"  max |error| vs float64 : {r['max_abs_err_vs_f64']:.3g}")
    print(f"  cycles                 : {r['cycles']:.0f} (ideal {r['ideal_cycles']:.0f})")
    print(f"  MAC utilisation        : {r['mac_utilization']:.4f}")
    print(f"  wall time              : {time.perf_counter() - t0:.1f} s (build included)")
    sys.exit(0 if r["bit_exact"] else 1)


if __name__ == "__main__":
    main()
