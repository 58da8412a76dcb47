"""ci/bench.py's baseline side-by-side: figures from the baseline's own bench are added, never overwrite, and
are marked."""

from ci.bench import merge_own_figures, side_by_side


def test_own_figures_fill_only_missing_keys():
    res = {"uart_bypass_bytes_per_cycle": 0.4, "errors": {"driver": "ImportError"}}
    own = {"uart_bypass_bytes_per_cycle": 9.9, "demo_wall_s_uart": 130.0, "shape": {"m": 256}, "meta": {"git": "x"}}
    merged = merge_own_figures(res, own)
    assert merged["uart_bypass_bytes_per_cycle"] == 0.4          # this revision's instrument wins
    assert merged["demo_wall_s_uart"] == 130.0 and merged["shape"] == {"m": 256}
    assert merged["own_instrument"] == ["demo_wall_s_uart", "shape"]
    assert "meta" not in merged and merged["errors"] == {"driver": "ImportError"}
    assert merge_own_figures(res, {}) == res


def test_side_by_side_marks_own_instrument_figures():
    base = {"sha": "abc", "demo_wall_s_uart": 130.0, "shape": {"m": 256}, "x": 2.0,
            "own_instrument": ["demo_wall_s_uart", "shape"]}
    cur = {"demo_wall_s_uart": 65.0, "shape": {"m": 256}, "x": 1.0, "meta": {"git": "def"}}
    lines = side_by_side(base, cur).splitlines()
    row = next(line for line in lines if line.startswith("demo_wall_s_uart"))
    assert row.startswith("demo_wall_s_uart *") and row.rstrip().endswith("0.500")
    assert any(line.startswith("shape.m *") for line in lines)
    assert next(line for line in lines if line.startswith("x ")).rstrip().endswith("0.500")
    assert lines[-1].startswith("* measured by the baseline's own ci/bench.py")
