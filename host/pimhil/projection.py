"""Projection of a campaign's decode step onto AiM-like silicon, beside a GPU memory-bandwidth roofline.

Every figure comes with the assumptions it rests on (`assumptions` in the result; the report prints them under
the table). Defaults: GDDR6-AiM as published (../shared/DESIGN.md §1, §7): 16 banks x 16 BF16 lanes per
channel at 1 GHz, 32 GB/s external bandwidth per channel; a card of 32 channels (16 chips); GPU: H100 SXM,
3.35 TB/s HBM3, 989 TFLOP/s dense BF16.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

DEFAULTS = {"aim_channels": 32, "aim_banks": 16, "aim_lanes": 16, "aim_clock_ghz": 1.0, "aim_ext_gbs": 32.0,
            "aim_gb_per_channel": 0.5, "gpu_bw_tbs": 3.35, "gpu_tflops": 989.0}


@dataclass(frozen=True)
class Silicon:
    """The projected machines. Units: channels, banks and lanes per channel, GHz, GB/s per channel, TB/s,
    TFLOP/s."""

    aim_channels: int = DEFAULTS["aim_channels"]
    aim_banks: int = DEFAULTS["aim_banks"]
    aim_lanes: int = DEFAULTS["aim_lanes"]
    aim_clock_ghz: float = DEFAULTS["aim_clock_ghz"]
    aim_ext_gbs: float = DEFAULTS["aim_ext_gbs"]
    aim_gb_per_channel: float = DEFAULTS["aim_gb_per_channel"]
    gpu_bw_tbs: float = DEFAULTS["gpu_bw_tbs"]
    gpu_tflops: float = DEFAULTS["gpu_tflops"]


def add_arguments(ap) -> None:
    """--aim-* and --gpu-* options (defaults above) on an argparse parser."""
    from .cli import _count, _positive
    ap.add_argument("--aim-channels", type=_count, default=DEFAULTS["aim_channels"], help="AiM channels (card)")
    ap.add_argument("--aim-banks", type=_count, default=DEFAULTS["aim_banks"], help="banks per channel")
    ap.add_argument("--aim-lanes", type=_count, default=DEFAULTS["aim_lanes"], help="BF16 lanes per bank")
    ap.add_argument("--aim-clock-ghz", type=_positive, default=DEFAULTS["aim_clock_ghz"], help="bank clock, GHz")
    ap.add_argument("--aim-ext-gbs", type=_positive, default=DEFAULTS["aim_ext_gbs"],
                    help="external bandwidth per channel, GB/s")
    ap.add_argument("--aim-gb-per-channel", type=_positive, default=DEFAULTS["aim_gb_per_channel"],
                    help="memory per channel, GB (capacity is reported, not modelled)")
    ap.add_argument("--gpu-bw-tbs", type=_positive, default=DEFAULTS["gpu_bw_tbs"], help="GPU memory bandwidth, TB/s")
    ap.add_argument("--gpu-tflops", type=_positive, default=DEFAULTS["gpu_tflops"], help="GPU BF16 peak, TFLOP/s")


def silicon_from_args(a) -> Silicon:
    return Silicon(**{k: getattr(a, k) for k in DEFAULTS})


def _aim_gemv_s(s: Silicon, m: int, k: int, util: float) -> tuple[float, float]:
    """(compute seconds, transfer seconds) of one M x K GEMV spread over every channel's banks: each bank runs
    ceil(M / banks in all) rows of ceil(K / lanes) bursts, one burst per cycle at the measured utilisation."""
    cycles = -(-m // (s.aim_channels * s.aim_banks)) * -(-k // s.aim_lanes) / util
    compute = cycles / (s.aim_clock_ghz * 1e9)
    # x (BF16) is broadcast to every channel's GB; each channel returns its M/channels FP32 results.
    transfer = (2 * k + 4 * m / s.aim_channels) / (s.aim_ext_gbs * 1e9)
    return compute, transfer


def _gpu_s(s: Silicon, bytes_: float, flops: float) -> float:
    return max(bytes_ / (s.gpu_bw_tbs * 1e12), flops / (s.gpu_tflops * 1e12))


def project(spec_raw: dict, util: dict, s: Silicon, batches=(1, 8)) -> dict:
    """Time per layer and tokens/s of a spec's model at each batch size, on AiM and on the GPU roofline.

    util: measured MAC utilisation per workload name (ideal MAC cycles over measured cycles of its tiles);
    a workload without one uses the mean of the measured ones, or 1.0 (ideal) when nothing was measured — the
    assumptions say which. Returns {"rows": [...], "assumptions": [...], "silicon": {...}}."""
    model = spec_raw.get("model", {})
    layers = int(model.get("layers", 1))
    kv_heads = int(model.get("kv_heads", 1))
    measured = [u for u in util.values() if u]
    fallback = sum(measured) / len(measured) if measured else 1.0
    assumptions = [
        f"AiM: {s.aim_channels} channels x {s.aim_banks} banks x {s.aim_lanes} BF16 lanes at {s.aim_clock_ghz} GHz "
        f"({s.aim_channels * s.aim_banks * s.aim_lanes * s.aim_clock_ghz * 2 / 1e3:.2f} TFLOP/s peak), "
        f"{s.aim_ext_gbs} GB/s external per channel.",
        "AiM GEMV: W's rows spread evenly over all channels' banks (ceil(M / banks) rows of ceil(K / lanes) bursts "
        "per bank, one burst a cycle), at the measured utilisation; x broadcast "
        "to every channel's GB and FP32 results read back over the external link, not overlapped with compute.",
        "AiM batch b: b GEMVs one after another (a GEMV unit reads W from its banks once per vector).",
        "AiM attention: each sequence's K and V of one KV head live in one channel, which runs that head's query "
        "group; channels work in parallel (min(channels, kv_heads x batch) busy), at the measured utilisation.",
        f"GPU: roofline max(bytes / {s.gpu_bw_tbs} TB/s, FLOPs / {s.gpu_tflops} TFLOP/s); BF16 weights read once per "
        "step whatever the batch; KV cache read once per sequence.",
        f"Per layer: every [[gemv]] of the spec (times its count); attention: the spec's [[attention]] group "
        f"times kv_heads = {kv_heads} per sequence. Layers: {layers}. Norms, RoPE, residuals and the LM head are "
        "left out on both sides.",
        "Utilisation per workload: " + (", ".join(f"{k} {v:.3f}" for k, v in util.items() if v) or "none measured")
        + (f"; others {fallback:.3f} (mean of measured)" if measured else "; 1.0 (ideal MAC cycles) assumed: the "
           "database has no cycle counts (golden target) — run the spec on a sim target for measured ones") + ".",
    ]
    weight_gb = sum(2 * g["m"] * g["k"] * g.get("count", 1) for g in spec_raw.get("gemv", [])) * layers / 1e9
    card_gb = s.aim_channels * s.aim_gb_per_channel
    assumptions.append(
        f"Capacity is not modelled: the layers' BF16 weights take {weight_gb:.1f} GB, a card of {s.aim_channels} "
        f"channels x {s.aim_gb_per_channel} GB holds {card_gb:.1f} GB (so {-(-weight_gb // card_gb):.0f} such cards); "
        "each layer is timed as if its weights sat on one card's channels, layers running one after another "
        "(cards in a pipeline), KV cache beside them.")
    rows = []
    for b in batches:
        aim = gpu = 0.0
        for g in spec_raw.get("gemv", []):
            m, k, n = g["m"], g["k"], g.get("count", 1)
            c, t = _aim_gemv_s(s, m, k, util.get(g["name"]) or fallback)
            aim += n * b * (c + t)
            gpu += n * _gpu_s(s, 2 * m * k, 2 * m * k * b)
        for at in spec_raw.get("attention", []):
            T, d, G = at["tokens"], at["dim"], at.get("group", 1)
            u = util.get(at["name"]) or fallback
            heads = kv_heads * G * b
            # scores and V^T p: 2 T d MACs per query head, on one channel's banks per KV head
            macs_per_s = min(s.aim_channels, kv_heads * b) * s.aim_banks * s.aim_lanes * s.aim_clock_ghz * 1e9 * u
            aim += at.get("count", 1) * 2 * T * d * heads / macs_per_s
            gpu += at.get("count", 1) * _gpu_s(s, 2 * 2 * T * d * kv_heads * b, 4 * T * d * heads)
        rows.append({"batch": b, "aim_layer_s": aim, "gpu_layer_s": gpu,
                     "aim_tokens_s": b / (aim * layers) if aim else None,
                     "gpu_tokens_s": b / (gpu * layers) if gpu else None, "layers": layers})
    return {"model": model.get("name", spec_raw.get("name")), "rows": rows, "assumptions": assumptions,
            "silicon": asdict(s)}
