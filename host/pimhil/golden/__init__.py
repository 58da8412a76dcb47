"""Bit-exact numpy model of the device arithmetic (docs/numerics.md)."""

from .fpbits import (bf16_to_bits, bf16_bits_to_f32, bits_to_f32, f32_to_bits, fp32_add, fp32_mul,
                     fp32_to_bf16, round_pack_f32)
from .mac import accumulate, gemv, lane_sum
from .activation import af_eval, build_lut
from .elementwise import ewadd, ewmul
from .array import GoldenArray, Response

__all__ = ["bf16_to_bits", "bf16_bits_to_f32", "bits_to_f32", "f32_to_bits", "fp32_add", "fp32_mul",
           "fp32_to_bf16", "round_pack_f32", "accumulate", "gemv", "lane_sum", "af_eval", "build_lut", "ewadd", "ewmul",
           "GoldenArray", "Response"]
