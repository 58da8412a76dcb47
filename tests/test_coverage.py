"""`make coverage`'s own parts (ci/coverage.py, tb/support/funcov.py) on small inputs: bins derived from the
contract, the frame monitor's sampling, the merge of Verilator data files, the Verilog-to-hw/ line map and the
exclusion rules."""

import itertools
import textwrap

import pytest

from ci import coverage
from pimhil.contract import (ALLOWED_FLAGS, CMDQ_BASE, CSR_BASE, ErrorCode, Flag, FrameCmd, FrameStatus, HubError,
                             HubOp, Op, Reg, Command, preset)
from pimhil.frame import encode_request, encode_response
from tb.support import funcov


@pytest.fixture
def collector(monkeypatch):
    monkeypatch.setattr(funcov, "ENABLED", True)
    c = funcov._Collector()
    monkeypatch.setattr(funcov, "COLLECTOR", c)
    monkeypatch.setattr(c, "write", lambda: None)
    return c


def test_bins_follow_the_contract():
    b = funcov.bins()
    n_flags = sum(2 ** bin(int(ALLOWED_FLAGS.get(op, 0))).count("1") for op in itertools.chain(Op, HubOp))
    assert len(b["op_flags"]) == n_flags
    assert "MAC_SBK|ZERO|BF16|READ" in b["op_flags"] and "WR_BIAS|ALL" in b["op_flags"]
    assert set(b["error"]) == {e.name for e in ErrorCode if e} | {e.name for e in HubError}
    assert set(b["frame_status"]) == {s.name for s in FrameStatus}
    assert len(set(sum(b.values(), []))) == sum(len(v) for v in b.values()) - len(
        set(b["frame_cmd"]) & set(b["frame_status"]))


def test_command_samples(collector):
    p = preset("board")
    funcov.command(Command(Op.MAC_SBK, flags=Flag.ZERO | Flag.READ, bank=p.banks - 1, row=0, col=0,
                           count=p.bursts_per_row, gb=0, acc=p.accs - 1), p)
    funcov.command(Command(Op.WR_SBK, bank=0, row=p.rows - 1, col=p.bursts_per_row - 1,
                           data=(0x0000, 0x0001, 0x7F80, 0x7FC0)), p)
    funcov.command(Command(Op.MAC_SBK, flags=Flag.ALL), p)        # refused: no op_flags bin
    funcov.command(Command(Op.EWMUL), p, queue=False)             # the array's port refuses hub ops
    hits = collector.hits
    assert set(hits["op_flags"]) == {"MAC_SBK|ZERO|READ", "WR_SBK"}
    funcov.command(Command(Op.EWMUL), p)
    assert hits["op_flags"]["EWMUL"] == 1
    assert {"bank:last", "bank:first", "acc:last", "count:last", "col:first", "col:last", "row:last"} <= set(
        hits["address"])
    assert {"lane0:zero", "lane1:subnormal", "lane2:inf", "lane3:nan"} == set(hits["lane_class"])


def test_frame_monitor_reassembles_commands_and_registers(collector):
    """Commands pushed through WRITE_FIXED frames, split across frames and fed byte by byte, come out whole;
    CSR reads answered OK become register samples; a request with a bad CRC is ignored like the link does."""
    p = preset("board")
    owner = object()
    words = Command(Op.WR_GB, gb=p.gb_bursts - 1, data=(0x3F80,) * p.lanes).queue_words(p)
    reqs = [encode_request(1, FrameCmd.WRITE_FIXED, CMDQ_BASE, words=words[:3]),
            encode_request(2, FrameCmd.WRITE_FIXED, CMDQ_BASE, words=words[3:]),
            encode_request(3, FrameCmd.READ, CSR_BASE + Reg.ERROR_CODE, count=1)]
    bad = bytearray(encode_request(4, FrameCmd.READ, CSR_BASE + Reg.UART_CRC_ERRORS, count=1))
    bad[-1] ^= 1
    for b in b"\x00\x13" + b"".join(reqs) + bytes(bad):
        funcov.host_bytes(owner, [b])
    funcov.device_bytes(owner, encode_response(1, FrameStatus.OK) + encode_response(2, FrameStatus.OK)
                        + encode_response(3, FrameStatus.OK, [int(ErrorCode.BAD_ROW)])
                        + encode_response(4, FrameStatus.OK, [5]))
    hits = collector.hits
    assert hits["op_flags"] == {"WR_GB": 1}
    assert hits["lane_class"]["lane0:normal"] == 1
    assert hits["address"]["gb:last"] == 1
    assert hits["error"] == {"BAD_ROW": 1}
    assert hits["frame_cmd"] == {"WRITE_FIXED": 2, "READ": 1}
    assert "link_counter" not in hits          # seq 4 had a bad CRC: no request, so its answer maps to nothing


def test_merge_sums_counts_per_point(tmp_path):
    key = "\x01f\x02a.v\x01l\x0212\x01t\x02line\x01h\x02top"
    for i, n in enumerate((3, 4)):
        (tmp_path / f"{i}.dat").write_text(f"# SystemC::Coverage-3\nC '{key}' {n}\nC '{key}x' 0\n")
    merged = coverage.merge(sorted(tmp_path.glob("*.dat")))
    assert merged == {key: 7, key + "x": 0}
    coverage.write_dat(merged, tmp_path / "m.dat")
    assert coverage.read_dat(tmp_path / "m.dat") == merged
    assert coverage.parse_key(key)["l"] == "12"


def test_source_map_finds_the_python_line(tmp_path):
    hw = coverage.ROOT / "hw"
    v = tmp_path / "t.v"
    v.write_text(textwrap.dedent(f"""\
        module t(clk);
          (* src = "{hw}/x.py:10" *)
          reg [3:0] count = 4'h0;
          wire \\$1 ;
          assign \\$1  = count == (* src = "{hw}/x.py:20" *) 4'h9;
          (* src = "{hw}/x.py:10" *)
          always @(posedge clk)
            count <= \\$2 ;
          always @* begin
            \\$2  = count;
            if (\\$1 ) begin
              \\$2  = 4'h0;
            end else begin
              \\$2  = count;
            end
          end
        endmodule
        """))
    _, where = coverage.source_map(v)
    assert where[3] == "hw/x.py:10"        # declaration
    assert where[4] == "hw/x.py:20"        # a temporary: its assign's operator
    assert where[7] == "hw/x.py:10"        # flip-flop process
    assert where[11] == "hw/x.py:20"       # the if: its condition
    assert where[12] == "hw/x.py:20"       # a statement under it
    assert where[14] == "hw/x.py:20"       # ... and under its else


def test_exclusions_need_a_reason_and_match_every_key(tmp_path):
    f = tmp_path / "x.toml"
    f.write_text('[[code]]\nkind = "line"\nverilog = "foo"\n')
    with pytest.raises(SystemExit):
        coverage.load_exclusions(f)
    f.write_text('[[code]]\nkind = "toggle"\ntop = "pim_*"\nsignal = "^cnt"\nreason = "r"\n'
                 '[[functional]]\nbin = "queue:full"\nreason = "q"\n')
    code, func, _ = coverage.load_exclusions(f)
    assert func == {"queue:full": "q"}
    p = coverage.Point("toggle", "/x/pim_device_board.v", 3, "pim_device_board.a", "cnt[3]:0->1", 0)
    assert code[0].matches(p)
    p.kind = "line"
    assert not code[0].matches(p)
    p.kind, p.file = "toggle", "/x/uart_phy.v"
    assert not code[0].matches(p)


def test_temporaries_get_no_toggle_points(tmp_path):
    """Verilator instruments the named signals of the coverage Verilog and none of Amaranth's `$` temporaries;
    every line keeps its number (the Verilog-to-hw/ line map relies on it)."""
    import re
    import subprocess

    from tb.support.coverage_rtl import untoggled_temporaries
    from tb.support.runner import verilator_on_path

    src = textwrap.dedent("""\
        module t(input clk, input [3:0] a, output [3:0] y);
          reg \\$auto$verilog_backend.cc:2355:dump_module$1  = 0;
          wire [3:0] \\$2 ;
          (* src = "hw/x.py:1" *)
          wire \\$3 ;
          wire [3:0] named;
          assign \\$2 = a ^ 4'h5;
          assign \\$3 = a[0];
          always @(posedge clk) \\$auto$verilog_backend.cc:2355:dump_module$1  <= \\$3 ;
          assign named = \\$2 + {3'h0, \\$auto$verilog_backend.cc:2355:dump_module$1 };
          assign y = named;
        endmodule
        """)
    out = untoggled_temporaries(src)
    assert out.count("\n") == src.count("\n") and out.count("coverage_off") == 3
    (tmp_path / "t.v").write_text(out)
    verilator_on_path()
    subprocess.run(["verilator", "--cc", "--coverage-toggle", "t.v", "-Mdir", "obj"], cwd=tmp_path, check=True,
                   capture_output=True)
    cpp = "".join(p.read_text() for p in (tmp_path / "obj").glob("*.cpp"))
    assert sorted(set(re.findall(r'"v_toggle/t", "([^"]+)"', cpp))) == ["a", "clk", "named", "y"]
