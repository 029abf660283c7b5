"""Tests of lowp.engines (DNNLOWP-style operator engines)."""
