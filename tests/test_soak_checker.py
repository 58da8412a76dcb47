"""The soak's checker (tb/soak/model.py) catches what it is there to catch: a short plan runs against a
software device (the link model and a golden device of its own), clean first, then with one fault injected at
a time: a dropped answer, an OK answer with a wrong word, a link that stops answering, a mutated golden image."""

import struct

import pytest

from pimhil.contract import Frame, FrameStatus, preset
from pimhil.frame import decode_response, encode_response
from tb.soak.model import GAP, Checker, Plan, golden_image

P = preset("board")


def _run(checker, *, mutate=None, stop_after=None, image=golden_image):
    """Plan 1500 link items and 150 command streams; feed the answers of a software device to `checker`.
    mutate(i, answer) may change answer number i; stop_after: answer nothing after that many answers."""
    from tb.control_hub.test_control_hub import random_command

    plan = Plan(P, 11, frames=1500, streams=150, checker=checker, random_command=random_command)
    device = Plan(P, 12, frames=0, streams=0, checker=Checker())   # only its link model and executor are used
    n = 0
    for item in plan.items():
        if item is GAP:
            device.link.gap()
            continue
        for _, frame in device.link.feed(item):
            device._execute(frame, "device")
        while device.checker.expected:
            answer = device.checker.expected.popleft().data
            if stop_after is not None and n >= stop_after:
                continue
            checker.consume(mutate(n, answer) if mutate else answer)
            n += 1
    checker.finish()
    checker.compare_image(image(plan.golden))
    return plan


def test_clean_run_passes_and_covers_every_kind():
    c = Checker()
    plan = _run(c)
    assert c.clean and c.answers > 1000 and c.image_words_differing == 0, c.notes
    assert len(c.device_image) == len(golden_image(plan.golden))
    kinds = plan.summary()["kinds"]
    for kind in ("write", "read", "bad_cmd", "bad_len", "bad_addr", "bus_error", "corrupted", "truncated",
                 "noise", "noise_sync", "counters", "cmdq_push", "stream_sync", "init", "image"):
        assert kinds.get(kind, 0) > 0, kind


def test_dropped_answer_is_a_hang():
    c = Checker(drop_answer=500)
    _run(c)
    assert c.hangs == 1 and c.silent_corruptions == 0 and c.mismatches == 0, c.notes


def _wrong_word(target):
    def mutate(i, answer):
        r = decode_response(answer)
        if i < target or r.status != FrameStatus.OK or not r.words:
            return answer
        words = list(r.words)
        words[0] ^= 1 << 7
        return encode_response(r.seq, int(r.status), words)
    return mutate


def test_wrong_word_with_ok_status_is_a_silent_corruption():
    c = Checker()
    seen = []

    def once(i, answer):
        if seen:
            return answer
        out = _wrong_word(700)(i, answer)
        if out != answer:
            seen.append(i)
        return out
    _run(c, mutate=once)
    assert seen and c.silent_corruptions == 1 and c.hangs == 0, c.notes


def test_wrong_status_is_a_mismatch():
    def mutate(i, answer):
        if i != 600:
            return answer
        r = decode_response(answer)
        status = FrameStatus.BAD_ADDR if r.status != FrameStatus.BAD_ADDR else FrameStatus.OK
        return encode_response(r.seq, int(status), [])
    c = Checker()
    _run(c, mutate=mutate)
    assert c.mismatches >= 1 and not c.clean, c.notes


def test_link_that_stops_answering_leaves_hangs():
    c = Checker()
    _run(c, stop_after=900)
    assert c.hangs > 100 and not c.clean


def test_mutated_golden_image_is_a_mismatch():
    def mutated(golden):
        img = golden_image(golden)
        addr = sorted(img)[len(img) // 2]
        img[addr] ^= 0x10000
        return img
    c = Checker()
    _run(c, image=mutated)
    assert c.image_words_differing == 1 and c.mismatches == 1, c.notes


@pytest.mark.parametrize("cut", [1, 5, Frame.REQ_HEADER])
def test_link_model_times_out_and_hunts(cut):
    """The receiver model against docs/uart_link.md: a cut frame stays open until a gap times it out; bytes
    outside a frame are dropped; a frame with a bad CRC is counted and not executed."""
    from pimhil.contract import SCRATCH_BASE, FrameCmd
    from pimhil.frame import encode_request
    from tb.soak.model import LinkModel

    link = LinkModel()
    frame = encode_request(1, FrameCmd.READ, SCRATCH_BASE, count=2)
    assert link.feed(b"\x00\x01" + frame[:cut]) == [] and link.dropped_bytes == 2 and link.pending
    link.gap()
    assert link.timeouts == 1 and not link.pending
    bad = bytearray(frame)
    bad[5] ^= 1
    assert link.feed(bytes(bad) + frame) == [(link.position - len(frame), frame)]
    assert link.crc_errors == 1
    assert struct.unpack_from("<H", frame, 3)[0] == 2


def test_every_status_read_follows_its_settling_bank_read():
    """A random STATUS read executes right after its one-word bank read, which drains the array's posted writes
    first (the golden device has no pipeline to show busy). Seed 961333637 once let a frame left open by a
    truncated item swallow that bank read: STATUS then read busy after two bank writes (CI soak, answer 3732)."""
    from pimhil.contract import CSR_BASE, Reg, bank_address
    from tb.control_hub.test_control_hub import random_command

    plan = Plan(P, 961333637, frames=500000, streams=50000, checker=Checker(), random_command=random_command)
    executed = []
    execute = plan._execute

    def record(frame, kind, image=None):
        executed.append((kind, struct.unpack_from("<BBHI", frame, 1)[3]))
        execute(frame, kind, image)

    plan._execute = record
    statuses = 0
    for _ in zip(range(20000), plan.items()):
        pass
    for i, (kind, addr) in enumerate(executed):
        if kind == "read" and addr == CSR_BASE + Reg.STATUS:
            statuses += 1
            assert i > 0 and executed[i - 1] == ("read", bank_address(P, 0, 0)), f"STATUS read {i} unguarded"
    assert statuses > 20


def test_a_stopped_run_says_so(tmp_path, monkeypatch, capsys):
    """`make soak` whose runs were stopped (a signal, no figures written) fails and says which run stopped and
    how, instead of a bare count of zero frames."""
    import ci.soak as soak

    class Stopped:
        def __init__(self, argv, cwd):
            self.argv = argv

        def wait(self):
            return -15

    monkeypatch.setattr(soak, "OUT", tmp_path / "soak")
    monkeypatch.setattr(soak, "ROOT", tmp_path)
    monkeypatch.setattr(soak.subprocess, "Popen", Stopped)
    monkeypatch.setenv("SEED", "5")
    assert soak.main(["--frames", "10", "--streams", "2", "--jobs", "2"]) == 1
    out = capsys.readouterr().out
    assert "soak FAILED: 0 frames" in out
    assert "run 0 (seed 5) stopped by signal 15 before writing its figures" in out
    assert "run 1 (seed 6) stopped by signal 15" in out
    junit = (tmp_path / "build" / "junit" / "soak.xml").read_text()
    assert junit.count('message="stopped (exit -15) before writing its figures"') == 2
