"""Whole-device testbenches, each run on both presets: `PRESETS` is their parametrisation (the sim preset's
marked as tb/support/marks.py says)."""

from tb.support.marks import sim_preset

PRESETS = ["board", sim_preset("sim")]
